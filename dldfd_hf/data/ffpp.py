"""FaceForensics++ on disk: layout discovery and validation, official splits, the video index.

The official tree (https://github.com/ondyari/FaceForensics)::

    <root>/original_sequences/youtube/{raw,c23,c40}/videos/000.mp4 ... 999.mp4
    <root>/manipulated_sequences/<Method>/{raw,c23,c40}/videos/<target>_<source>.mp4

The official split files (``train.json``, ``val.json``, ``test.json``: 360/70/70 pairs ``[a, b]``)
ship with this package in ``dldfd_hf/data/splits`` under their MIT licence, copied from the
FaceForensics repository (``dataset/splits``). A pair puts the originals ``a`` and ``b`` and the
fakes ``a_b`` and ``b_a`` of every method into its split.

DeepFakeDetection (Google/Jigsaw actors) has no official split; when asked for, its fakes and the
actor originals (``original_sequences/actors``) all go to ``test``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from .._io import PathLike
from ..labels import LABEL_NAMES
from .folders import require_folder
from .units import ORIGINAL, BuildUnit


COMPRESSIONS = ("raw", "c23", "c40")
DEFAULT_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
OPTIONAL_METHODS = ("DeepFakeDetection", "FaceShifter")
# ClassLabel names of the corpus ``method`` column: append only, never reorder (stored ids).
METHOD_NAMES = (ORIGINAL, *DEFAULT_METHODS, *OPTIONAL_METHODS)
SPLITS = ("train", "validation", "test")
SPLIT_FILES = {"train": "train.json", "validation": "val.json", "test": "test.json"}
# Column order and abbreviations of the paper's Table 1.
TABLE1_ORDER = ("NeuralTextures", "Deepfakes", "FaceSwap", "Face2Face", "FaceShifter", "DeepFakeDetection")
ABBREVIATIONS = {
    ORIGINAL: "Pristine",
    "Deepfakes": "DF",
    "Face2Face": "F2F",
    "FaceSwap": "FS",
    "NeuralTextures": "NT",
    "FaceShifter": "FSh",
    "DeepFakeDetection": "DFD",
}
PHASES = {"train": "Training", "validation": "Validation", "test": "Testing"}

_YOUTUBE_ID = re.compile(r"^\d{3}$")
_PAIR_ID = re.compile(r"^\d{3}_\d{3}$")
_ACTOR_ID = re.compile(r"^\d{2}__[A-Za-z0-9_-]+$")
_DFD_ID = re.compile(r"^\d{2}_\d{2}__[A-Za-z0-9_-]+__[A-Za-z0-9]+$")
_VIDEO_SUFFIX = ".mp4"
_SHOW = 8  # how many offending names an error message lists


class FFPPLayoutError(ValueError):
    """The folder is not (a usable part of) the official FaceForensics++ tree."""


class SplitFileError(ValueError):
    """A split file is missing or malformed."""


class FFPPVideo(BuildUnit):
    """One video of the index (a :class:`~dldfd_hf.data.units.BuildUnit`)."""


@dataclass(frozen=True)
class Splits:
    """Pairs per split; ``originals``/``fakes`` map a video id to its split."""

    pairs: Mapping[str, tuple[tuple[str, str], ...]]
    source: str

    @property
    def originals(self) -> dict[str, str]:
        return {vid: split for split, pairs in self.pairs.items() for pair in pairs for vid in pair}

    @property
    def fakes(self) -> dict[str, str]:
        out = {}
        for split, pairs in self.pairs.items():
            for a, b in pairs:
                out[f"{a}_{b}"] = out[f"{b}_{a}"] = split
        return out

    def to_json_files(self, directory: PathLike) -> None:
        """Write ``train.json``/``val.json``/``test.json`` in the official format."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for split, name in SPLIT_FILES.items():
            (directory / name).write_text(json.dumps([list(p) for p in self.pairs[split]], indent=2) + "\n")


def official_splits_dir() -> Path:
    """The packaged official split files (MIT, FaceForensics repository, ``dataset/splits``)."""
    return Path(str(resources.files("dldfd_hf.data") / "splits"))


def load_splits(splits_dir: Optional[PathLike] = None) -> Splits:
    """Read and validate ``train.json``, ``val.json``, ``test.json`` (default: the official ones).

    Each file is a JSON list of ``[a, b]`` pairs of video ids; no id may appear twice.
    """
    directory = official_splits_dir() if splits_dir is None else splits_dir
    directory = require_folder(directory, "splits directory", SplitFileError, hint=f"expected {_expected_split_files()}")
    missing = [name for name in SPLIT_FILES.values() if not (directory / name).is_file()]
    if missing:
        found = sorted(p.name for p in directory.iterdir())
        raise SplitFileError(
            f"split file(s) {', '.join(missing)} missing in {directory} "
            f"(expected {_expected_split_files()}; found: {', '.join(found) or 'nothing'})"
        )
    pairs: dict[str, tuple[tuple[str, str], ...]] = {}
    seen: dict[str, str] = {}
    for split, name in SPLIT_FILES.items():
        path = directory / name
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SplitFileError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(data, list):
            raise SplitFileError(f"{path}: expected a JSON list of [a, b] id pairs, found {type(data).__name__}")
        split_pairs = []
        for i, pair in enumerate(data):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) and v for v in pair)):
                raise SplitFileError(f"{path}: entry {i} is {pair!r}, expected a pair of video ids like [\"071\", \"054\"]")
            if pair[0] == pair[1]:
                raise SplitFileError(f"{path}: entry {i} pairs video {pair[0]!r} with itself")
            for vid in pair:
                if vid in seen:
                    raise SplitFileError(f"{path}: video {vid!r} (entry {i}) is already listed in {seen[vid]}")
                seen[vid] = name
            split_pairs.append((pair[0], pair[1]))
        pairs[split] = tuple(split_pairs)
    return Splits(pairs=pairs, source=str(directory))


def _expected_split_files() -> str:
    return ", ".join(SPLIT_FILES.values())


def original_dir(root: PathLike, compression: str, source: str = "youtube") -> Path:
    return Path(root) / "original_sequences" / source / compression / "videos"


def method_dir(root: PathLike, method: str, compression: str) -> Path:
    return Path(root) / "manipulated_sequences" / method / compression / "videos"


def describe_layout(root: PathLike) -> str:
    """What the tree holds, as ``original_sequences/youtube: c23, c40; manipulated_sequences/Deepfakes: c40``."""
    root = Path(root)
    parts = []
    for top, kind in (("original_sequences", "original"), ("manipulated_sequences", "method")):
        base = root / top
        if not base.is_dir():
            continue
        for sub in sorted(p for p in base.iterdir() if p.is_dir()):
            levels = sorted(p.name for p in sub.iterdir() if (p / "videos").is_dir())
            parts.append(f"{top}/{sub.name}: {', '.join(levels) or 'no <compression>/videos folders'}")
    if not parts:
        entries = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        return f"top-level entries: {', '.join(entries[:_SHOW]) or 'none'}" + (" ..." if len(entries) > _SHOW else "")
    return "; ".join(parts)


@dataclass
class FFPPIndex:
    """Every video of one compression level with its split, method and label (no decoding)."""

    root: Path
    compression: str
    methods: tuple[str, ...]
    videos: list[FFPPVideo]
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (split, method, video_id)
    unlisted: list[Path] = field(default_factory=list)  # well-named files that no split lists
    splits_source: str = ""

    def __len__(self) -> int:
        return len(self.videos)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {method: number of videos}}``."""
        return counts_by_split(((v.split, v.method) for v in self.videos), self.methods)

    def class_counts(self) -> dict[str, dict[str, int]]:
        """``{split: {"real": n, "fake": m}}``."""
        out = {s: {"real": 0, "fake": 0} for s in SPLITS}
        for v in self.videos:
            out[v.split][LABEL_NAMES[v.label]] += 1
        return out

    def table(self) -> str:
        return format_table1(self.counts(), methods=self.methods)

    def select(self, split: Optional[str] = None, method: Optional[str] = None) -> list[FFPPVideo]:
        return [v for v in self.videos if (split is None or v.split == split) and (method is None or v.method == method)]


def counts_by_split(pairs: Iterable[tuple[str, str]], methods: Sequence[str]) -> dict[str, dict[str, int]]:
    counter = Counter(pairs)
    return {s: {m: counter.get((s, m), 0) for m in (ORIGINAL, *methods)} for s in SPLITS}


def index_ffpp(
    root: PathLike,
    compression: str = "c40",
    methods: Sequence[str] = DEFAULT_METHODS,
    splits_dir: Optional[PathLike] = None,
    allow_missing: bool = False,
) -> FFPPIndex:
    """List every video of ``compression`` with split, method and label; validates the layout.

    Raises :class:`FFPPLayoutError` naming everything that is wrong (missing folders, unexpected file
    names, videos the splits list but the tree lacks unless ``allow_missing``), and
    :class:`SplitFileError` for missing or malformed split files.
    """
    root = Path(root)
    methods = tuple(methods)
    _check_index_options(compression, methods)
    _require_ffpp_root(root)
    splits = load_splits(splits_dir)
    folders = _video_folders(root, compression, methods)
    found = _scan_folders(root, compression, folders)
    videos, missing, unlisted = _match_splits(found, splits, methods, compression)
    if missing and not allow_missing:
        raise _missing_videos_error(missing, folders, root, compression, splits.source)
    return FFPPIndex(
        root=root,
        compression=compression,
        methods=methods,
        videos=_in_index_order(videos),
        missing=sorted(missing),
        unlisted=sorted(unlisted),
        splits_source=splits.source,
    )


# File-name rule of each folder (by its key in _video_folders); the method folders hold <target>_<source>.
_NAME_PATTERNS = {ORIGINAL: _YOUTUBE_ID, "actors": _ACTOR_ID, "DeepFakeDetection": _DFD_ID}
_EXPECTED_NAMES = {
    ORIGINAL: "NNN.mp4 (3-digit id)",
    "actors": "NN__<scene>.mp4",
    "DeepFakeDetection": "NN_NN__<scene>__<code>.mp4",
}
_EXPECTED_PAIR_NAME = "<target>_<source>.mp4 (3-digit ids, e.g. 000_003.mp4)"


def _check_index_options(compression: str, methods: tuple[str, ...]) -> None:
    """Raise ValueError for an unknown compression, an unknown method or a method listed twice."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    unknown = [m for m in methods if m not in METHOD_NAMES or m == ORIGINAL]
    if unknown:
        raise ValueError(
            f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(DEFAULT_METHODS + OPTIONAL_METHODS)}"
        )
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods listed twice: {', '.join(sorted(m for m, n in Counter(methods).items() if n > 1))}")


def _require_ffpp_root(root: Path) -> None:
    """Raise FFPPLayoutError unless ``root`` is a folder with at least one of the two FF++ top folders."""
    require_folder(root, "FaceForensics++ root", FFPPLayoutError)
    if not (root / "original_sequences").is_dir() and not (root / "manipulated_sequences").is_dir():
        raise FFPPLayoutError(
            f"{root} is not a FaceForensics++ tree: expected original_sequences/ and manipulated_sequences/ "
            f"in it (found {describe_layout(root)})"
        )


def _video_folders(root: Path, compression: str, methods: tuple[str, ...]) -> dict[str, Path]:
    """The videos folder of the originals (key ORIGINAL), of each method, and of the DFD actors ("actors")."""
    folders = {ORIGINAL: original_dir(root, compression)}
    folders.update({m: method_dir(root, m, compression) for m in methods})
    if "DeepFakeDetection" in methods:
        folders["actors"] = original_dir(root, compression, source="actors")
    return folders


def _scan_folders(root: Path, compression: str, folders: Mapping[str, Path]) -> dict[str, dict[str, Path]]:
    """``{folder key: {video id: path}}``; raises FFPPLayoutError listing every folder that is wrong."""
    problems: list[str] = []
    found: dict[str, dict[str, Path]] = {}
    for name, folder in folders.items():
        if not folder.is_dir():
            problems.append(f"missing folder {folder.relative_to(root)}")
            continue
        files, bad = _videos_in(folder, _NAME_PATTERNS.get(name, _PAIR_ID))
        if bad:
            expected = _EXPECTED_NAMES.get(name, _EXPECTED_PAIR_NAME)
            problems.append(
                f"{folder.relative_to(root)}: {len(bad)} unexpected name(s), expected {expected}; found "
                + ", ".join(bad[:_SHOW])
                + (" ..." if len(bad) > _SHOW else "")
            )
        found[name] = files
    if problems:
        raise FFPPLayoutError(
            f"FaceForensics++ tree {root} (compression {compression}) is not usable:\n  - "
            + "\n  - ".join(problems)
            + f"\nfound: {describe_layout(root)}"
        )
    return found


def _videos_in(folder: Path, pattern: re.Pattern) -> tuple[dict[str, Path], list[str]]:
    """The videos whose id matches ``pattern``, by id, and the names of every other entry."""
    files, bad = {}, []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue  # .DS_Store and friends
        if path.is_file() and path.suffix == _VIDEO_SUFFIX and pattern.match(path.stem):
            files[path.stem] = path
        else:
            bad.append(path.name)
    return files, bad


def _match_splits(
    found: Mapping[str, Mapping[str, Path]], splits: Splits, methods: tuple[str, ...], compression: str
) -> tuple[list[FFPPVideo], list[tuple[str, str, str]], list[Path]]:
    """Pair the videos found with the splits: ``(videos, missing (split, method, id), unlisted paths)``."""
    videos: list[FFPPVideo] = []
    missing: list[tuple[str, str, str]] = []
    unlisted: list[Path] = []
    wanted = {ORIGINAL: splits.originals, **{m: splits.fakes for m in methods if m != "DeepFakeDetection"}}
    for method, split_of in wanted.items():
        files = found[method]
        for vid, split in split_of.items():
            if vid in files:
                videos.append(FFPPVideo(split, method, vid, compression, files[vid]))
            else:
                missing.append((split, method, vid))
        unlisted.extend(path for vid, path in files.items() if vid not in split_of)
    if "DeepFakeDetection" in methods:
        # No official split for DFD: its actor originals and fakes are all test videos.
        for vid, path in found["actors"].items():
            videos.append(FFPPVideo("test", ORIGINAL, vid, compression, path))
        for vid, path in found["DeepFakeDetection"].items():
            videos.append(FFPPVideo("test", "DeepFakeDetection", vid, compression, path))
    return videos, missing, unlisted


def _missing_videos_error(
    missing: Sequence[tuple[str, str, str]], folders: Mapping[str, Path], root: Path, compression: str, source: str
) -> FFPPLayoutError:
    """The error for videos the splits list but the tree lacks, naming the first few."""
    shown = ", ".join(
        f"{folders[m].relative_to(root)}/{vid}{_VIDEO_SUFFIX}" for _, m, vid in sorted(missing)[:_SHOW]
    )
    return FFPPLayoutError(
        f"{len(missing)} video(s) listed in the splits ({source}) are missing under {root} "
        f"(compression {compression}): {shown}{' ...' if len(missing) > _SHOW else ''}. "
        "Pass allow_missing=True (--allow-missing) to index the videos that exist."
    )


def _in_index_order(videos: list[FFPPVideo]) -> list[FFPPVideo]:
    """Sort ``videos`` in place by split, method (METHOD_NAMES order) and id, and return them."""
    order = {m: i for i, m in enumerate(METHOD_NAMES)}
    split_order = {s: i for i, s in enumerate(SPLITS)}
    videos.sort(key=lambda v: (split_order[v.split], order[v.method], v.video_id))
    return videos


def format_table1(
    video_counts: Mapping[str, Mapping[str, int]],
    image_counts: Optional[Mapping[str, Mapping[str, int]]] = None,
    methods: Optional[Sequence[str]] = None,
) -> str:
    """The paper's Table 1: per phase (split), images and videos of Pristine and each method."""
    if methods is None:
        methods = [m for m in METHOD_NAMES if m != ORIGINAL and any(m in c for c in video_counts.values())]
    columns = [ORIGINAL] + sorted(methods, key=lambda m: TABLE1_ORDER.index(m) if m in TABLE1_ORDER else 99)
    header = ["Phase"] + [ABBREVIATIONS.get(m, m) for m in columns]

    def block(title: str, counts: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
        rows = [[title] + [""] * len(columns), header]
        for split in SPLITS:
            rows.append([PHASES[split]] + [str(counts.get(split, {}).get(m, 0)) for m in columns])
        return rows

    rows = block("Videos", video_counts)
    if image_counts is not None:
        rows = block("Images", image_counts) + [[""] * len(header)] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows)

