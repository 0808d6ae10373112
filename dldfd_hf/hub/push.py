"""Push a model, the private FF++ corpus, or the demo Space to the Hugging Face Hub.

Each push stages the exact folder that goes up (``prepare_*_folder``), then calls
``HfApi.create_repo`` and ``HfApi.upload_folder``. A dry run writes that folder to a directory of
your choice and contacts nothing. The corpus is derived from FaceForensics++, whose terms forbid
redistribution: it is only ever pushed to a private repo, and the push refuses a repo that turns out
to be public. A Hub that cannot be reached (offline mode, no network, a refused token) is a
:class:`PushError` naming the repo and the reason.
"""

from __future__ import annotations

import importlib
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Union

from huggingface_hub import HfApi, SpaceCard
from huggingface_hub.errors import HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id
from torch import nn

from .. import __version__
from .._io import PathLike, atomic_folder
from ..data.publish import export_parquet
from ..inference.loading import load_model
from ..model_folder import check_model_folder
from .export import export_model

__all__ = [
    "SPACE_FILES",
    "PushError",
    "check_repo_id",
    "PushResult",
    "prepare_corpus_folder",
    "prepare_model_folder",
    "prepare_space_folder",
    "push_corpus",
    "push_model",
    "push_space",
]

_SPACE_CODE = ("app.py", "analysis.py")  # the page and its logic (app.py imports analysis.py beside it)
SPACE_FILES = (*_SPACE_CODE, "requirements.txt", "README.md")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class PushError(RuntimeError):
    """The upload did not happen: the Hub could not be reached or refused it (the message says why)."""


@dataclass
class PushResult:
    """What was (or, in a dry run, would have been) uploaded."""

    repo_id: str
    repo_type: str
    private: bool
    files: List[str] = field(default_factory=list)
    folder: Optional[Path] = None  # dry run: the folder written instead of uploading
    url: Optional[str] = None  # real push: the commit URL

    @property
    def dry_run(self) -> bool:
        return self.url is None


def check_repo_id(repo_id: str, what: str = "repo id") -> str:
    """``repo_id`` when it is a Hub repo id ``ORG/NAME``; a ValueError (one line) for anything else,
    local paths (``../../x``, ``runs/best/``, ``/abs``) included."""
    valid = isinstance(repo_id, str) and bool(_REPO_ID.match(repo_id))
    if valid:
        try:
            validate_repo_id(repo_id)  # the Hub's own rules too: no "--" or ".." inside, length
        except HFValidationError:
            valid = False
    if not valid:
        raise ValueError(f"{what} must look like ORG/NAME (a Hub repo id, not a local path), got {repo_id!r}")
    return repo_id


def _files(folder: Path) -> List[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------------
# Staging
# --------------------------------------------------------------------------------------------------
def prepare_model_folder(
    model: Union[nn.Module, PathLike],
    output_dir: PathLike,
    *,
    repo_id: Optional[str] = None,
    results: Any = None,
    training: Optional[Mapping[str, Any]] = None,
    trained: Optional[bool] = None,
    overwrite: bool = False,
) -> Path:
    """The model repo folder: ``model`` exported with its card (:func:`dldfd_hf.hub.export.export_model`).

    ``model`` is a timm / transformers DLDFD model, or anything ``--model`` accepts elsewhere
    (:func:`dldfd_hf.inference.loading.load_model`): a model folder (``save_pretrained`` or an export), a Hub
    id, or an architecture name (random weights: the card then says so).
    """
    if not isinstance(model, nn.Module):
        model = load_model(model)[0]
    return export_model(model, output_dir, repo_id=repo_id, results=results, training=training,
                        trained=trained, overwrite=overwrite)


def prepare_corpus_folder(corpus_dir: PathLike, output_dir: PathLike) -> Path:
    """The dataset repo folder: Parquet shards ``data/<split>-NNNNN-of-NNNNN.parquet`` and the dataset
    card, as written by :func:`dldfd_hf.data.publish.export_parquet` (``output_dir`` must not exist).

    ``corpus_dir`` is the folder ``dldfd build-ffpp`` wrote.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist (build it with `dldfd build-ffpp`)")
    return export_parquet(corpus_dir, output_dir)


def _installed_requirement() -> str:
    try:
        return f"dldfd-hf=={version('dldfd-hf')}"
    except PackageNotFoundError:
        return f"dldfd-hf=={__version__}"


_DLDFD_REQUIREMENT = re.compile(r"^\s*dldfd[-_]hf\b", re.IGNORECASE)


def _pinned_requirements(text: str, requirement: str) -> str:
    """``requirements.txt`` with its dldfd-hf line(s) replaced by the one pinned ``requirement``
    (in place of the first one; first of all when there is none)."""
    lines = text.splitlines()
    positions = [i for i, line in enumerate(lines) if _DLDFD_REQUIREMENT.match(line)]
    at = positions[0] if positions else 0
    kept = [line for i, line in enumerate(lines) if i not in positions]
    return "\n".join(kept[:at] + [requirement] + kept[at:]).rstrip() + "\n"


def _gradio_version() -> str:
    """The installed gradio's version, which the Space card pins (``sdk_version``): the Space then runs
    the gradio the demo was tested with."""
    try:
        return version("gradio")
    except PackageNotFoundError:
        raise ModuleNotFoundError(
            "preparing the demo Space needs gradio (its version goes in the Space card): "
            'pip install "dldfd-hf[demo]"', name="gradio") from None


def prepare_space_folder(
    demo_dir: PathLike,
    output_dir: PathLike,
    *,
    model_id: Optional[str] = None,
    requirement: Optional[str] = None,
    title: str = "DLDFD deepfake detector",
    overwrite: bool = False,
) -> Path:
    """The Space folder: ``demo/app.py`` and ``analysis.py``, ``requirements.txt`` pinned to dldfd-hf,
    and ``README.md`` with the Spaces metadata (gradio SDK and version, app file, the model it runs).

    Only :data:`SPACE_FILES` are copied: nothing else from the demo folder (test media, caches) goes up.
    Needs gradio installed (the ``demo`` extra): the card pins its version.

    Args:
        demo_dir: the folder with :data:`SPACE_FILES`.
        model_id: the model repo the Space runs: the first entry of its ``models`` metadata, which
            ``demo/app.py`` loads (unless the Space sets ``DLDFD_MODEL``). A Hub repo id ``ORG/NAME``:
            a local path is refused (ValueError), as the Space could not load it.
        requirement: the dldfd-hf requirement line (default: ``dldfd-hf==<installed version>``;
            a ``dldfd-hf @ git+https://...`` URL works too).
    """
    if model_id is not None:
        # The Space loads it from the Hub: a local path would fail there (or load whatever it names).
        check_repo_id(model_id, "the Space's model id (--model-id)")
    gradio_version = _gradio_version()
    demo_dir = Path(demo_dir)
    missing = [name for name in SPACE_FILES if not (demo_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the Space needs {', '.join(missing)} in {demo_dir} (expected {', '.join(SPACE_FILES)})"
        )
    requirement = requirement or _installed_requirement()
    if not _DLDFD_REQUIREMENT.match(requirement):
        raise ValueError(f"requirement must name dldfd-hf, got {requirement!r}")

    card = SpaceCard((demo_dir / "README.md").read_text(encoding="utf-8"))
    data = card.data
    for key, value in (("title", title), ("emoji", "🕵️"), ("colorFrom", "indigo"), ("colorTo", "gray"),
                       ("pinned", False), ("license", "apache-2.0"),
                       ("short_description", "Deepfake detection on face crops and videos (DLDFD)")):
        if data.get(key) is None:
            data[key] = value
    data["sdk"] = "gradio"
    data["sdk_version"] = gradio_version
    data["app_file"] = "app.py"
    if model_id:  # first: the app runs the first ``models`` entry of its card
        data["models"] = [model_id] + [m for m in data.get("models") or [] if m != model_id]
    for listed in data.get("models") or []:
        check_repo_id(listed, f"a models: entry of {demo_dir / 'README.md'}")
    tags = list(data.get("tags") or [])
    data["tags"] = tags + [t for t in ("deepfake-detection", "dldfd") if t not in tags]

    output_dir = Path(output_dir)
    with atomic_folder(output_dir, overwrite=overwrite) as folder:
        for name in _SPACE_CODE:
            shutil.copyfile(demo_dir / name, folder / name)
        requirements = (demo_dir / "requirements.txt").read_text(encoding="utf-8")
        (folder / "requirements.txt").write_text(_pinned_requirements(requirements, requirement), encoding="utf-8")
        card.save(folder / "README.md")
    return output_dir


# --------------------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------------------
def _api(api: Any, token: Optional[str]) -> Any:
    if api is not None:
        return api

    return HfApi(token=token)


def _upload(
    folder: Path,
    repo_id: str,
    repo_type: str,
    private: bool,
    *,
    api: Any,
    commit_message: str,
    require_private: bool = False,
    **create_kwargs: Any,
) -> PushResult:
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **create_kwargs)
    repo_id = getattr(url, "repo_id", None) or repo_id
    if require_private:
        # create_repo(exist_ok=True) leaves an existing repo's visibility as it is: check it.
        if not api.repo_info(repo_id, repo_type=repo_type).private:
            raise PermissionError(
                f"{repo_type} repo {repo_id} exists and is PUBLIC; FaceForensics++-derived data may only go "
                "to a private repo. Make it private (or pick another name) and push again; nothing was uploaded."
            )
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                               commit_message=commit_message)
    return PushResult(repo_id, repo_type, private, _files(folder),
                      url=str(getattr(commit, "commit_url", None) or commit))


def _push(prepare: Callable[[Path], Path], repo_id: str, repo_type: str, private: bool, *,
          dry_run_dir: Optional[PathLike], api: Any, token: Optional[str],
          commit_message: str, **upload_kwargs: Any) -> PushResult:
    if dry_run_dir is not None:
        folder = prepare(Path(dry_run_dir))
        return PushResult(repo_id, repo_type, private, _files(folder), folder=folder)
    api = _api(api, token)
    with tempfile.TemporaryDirectory(prefix="dldfd-push-") as tmp:
        folder = prepare(Path(tmp) / "repo")
        try:
            return _upload(folder, repo_id, repo_type, private, api=api, commit_message=commit_message,
                           **upload_kwargs)
        except PermissionError:  # our own refusal of a public repo: its message says it all
            raise
        except _hub_errors() as error:
            raise PushError(f"cannot push to the {repo_type} repo {repo_id}: {_hub_reason(error)}") from error


def _hub_errors() -> tuple:
    """What a Hub call raises when the Hub cannot be reached or refuses: OSError covers offline mode
    (``OfflineModeIsEnabled``), HTTP errors (``HfHubHTTPError``) and sockets; the HTTP clients'
    own transport errors are added when installed."""
    errors = [OSError]
    for module in ("httpx", "httpx2", "requests"):
        try:
            errors.append(getattr(importlib.import_module(module), "HTTPError"))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _hub_reason(error: BaseException) -> str:
    if isinstance(error, OfflineModeIsEnabled):
        return ("the Hugging Face Hub cannot be reached in offline mode (HF_HUB_OFFLINE is set): unset it, "
                "or write the folder with a dry run (--dry-run --output-dir DIR)")
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def push_model(
    model: Union[nn.Module, PathLike],
    repo_id: str,
    *,
    private: bool = False,
    results: Any = None,
    training: Optional[Mapping[str, Any]] = None,
    trained: Optional[bool] = None,
    dry_run_dir: Optional[PathLike] = None,
    overwrite: bool = False,
    api: Any = None,
    token: Optional[str] = None,
    commit_message: str = "Upload DLDFD model",
) -> PushResult:
    """Export ``model`` with its card (results from ``results``) and upload it as a model repo.

    ``dry_run_dir``: write the folder that would be uploaded there and upload nothing.
    ``api``: an ``HfApi``-like object (default ``HfApi(token=token)``).
    """
    check_repo_id(repo_id)

    def prepare(out: Path) -> Path:
        folder = prepare_model_folder(model, out, repo_id=repo_id, results=results, training=training,
                                      trained=trained, overwrite=overwrite)
        check_model_folder(folder)
        return folder

    return _push(prepare, repo_id, "model", private, dry_run_dir=dry_run_dir,
                 api=api, token=token, commit_message=commit_message)


def push_corpus(
    corpus_dir: PathLike,
    repo_id: str,
    *,
    private: bool = True,
    dry_run_dir: Optional[PathLike] = None,
    api: Any = None,
    token: Optional[str] = None,
    commit_message: str = "Upload FaceForensics++ face-crop corpus",
) -> PushResult:
    """Upload the corpus as Parquet shards + dataset card to a **private** dataset repo.

    ``private=False`` is refused: FaceForensics++ may not be redistributed. An existing repo of that
    name that is public is refused too, before anything is uploaded.
    """
    check_repo_id(repo_id)
    if private is not True:
        raise ValueError(
            "the FaceForensics++ corpus can only be pushed to a private repo (its terms forbid redistribution)"
        )

    def prepare(out: Path) -> Path:
        return prepare_corpus_folder(corpus_dir, out)

    return _push(prepare, repo_id, "dataset", True, dry_run_dir=dry_run_dir,
                 api=api, token=token, commit_message=commit_message, require_private=True)


def push_space(
    demo_dir: PathLike,
    repo_id: str,
    *,
    model_id: Optional[str] = None,
    requirement: Optional[str] = None,
    private: bool = False,
    dry_run_dir: Optional[PathLike] = None,
    overwrite: bool = False,
    api: Any = None,
    token: Optional[str] = None,
    commit_message: str = "Upload DLDFD demo",
) -> PushResult:
    """Upload the Gradio demo (``demo/``) as a Space running ``model_id``."""
    check_repo_id(repo_id)

    def prepare(out: Path) -> Path:
        return prepare_space_folder(demo_dir, out, model_id=model_id, requirement=requirement,
                                    overwrite=overwrite)

    return _push(prepare, repo_id, "space", private, dry_run_dir=dry_run_dir,
                 api=api, token=token, commit_message=commit_message, space_sdk="gradio")
