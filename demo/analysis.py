"""The logic behind the Gradio demo (``demo/app.py``): limits, running the detector, and turning its
result into what the page shows (verdict text, plot data, galleries, boxed photo, faces table,
Grad-CAM heatmaps, the JSON download, the bound on Gradio's cache).

It sits beside ``app.py``, which imports it as a sibling module (the Space folder carries both:
:data:`dldfd_hf.hub.push.SPACE_FILES`). Nothing here imports gradio: it is plain data in, plain data
out, so it is testable without a server. Inference goes through the ``deepfake-video-detection``
pipeline and the rows of ``dldfd detect`` (:func:`dldfd_hf.inference.records.result_row`), so the
demo and the CLI give the same verdict and per-frame records for the same file and model.
Needs the ``demo`` extra (pandas, for the plot and the faces table): ``pip install "dldfd-hf[demo]"``.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
)

import pandas as pd
from huggingface_hub import metadata_load
from PIL import Image, ImageDraw, ImageFont

from dldfd_hf._io import PathLike, atomic_write_text
from dldfd_hf.inference.explain import grad_cam, overlay_heatmap
from dldfd_hf.inference.loading import DEFAULT_MODEL
from dldfd_hf.inference.records import format_rows, result_row
from dldfd_hf.inference.voting import STRATEGIES, VotingRule
from dldfd_hf.labels import FAKE, LABEL_NAMES, REAL
from dldfd_hf.media.files import MediaError, media_kind
from dldfd_hf.media.image import load_image
from dldfd_hf.media.video_reader import VideoReader

__all__ = [
    "MODEL_ENV",
    "DemoLimits",
    "InputRejected",
    "Analysis",
    "resolve_model_spec",
    "check_upload",
    "check_num_frames",
    "voting_rule",
    "analyse_video",
    "analyse_image",
    "verdict_text",
    "verdict_details",
    "probability_plot_data",
    "gallery_items",
    "explain_crops",
    "draw_faces",
    "faces_table",
    "write_records_json",
    "trim_cache",
]

MODEL_ENV = "DLDFD_MODEL"
FAKE_COLOUR = "#d62728"
REAL_COLOUR = "#2ca02c"
THRESHOLD_COLOUR = "#7f7f7f"
PLOT_SERIES = ("P(fake)", "threshold")
FACES_TABLE_COLUMNS = ["face", "P(fake)", "looks", "face confidence", "box (x1, y1, x2, y2)"]

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class DemoLimits:
    """What the demo accepts. ``max_frames`` bounds the frames-per-video control (and API calls)."""

    max_upload_mb: float = 100.0
    max_video_seconds: float = 300.0
    max_frames: int = 64
    max_cache_mb: float = 1000.0
    """Most the app's uploads, crops and records may take in Gradio's cache (see :func:`trim_cache`)."""

    def describe(self) -> str:
        return (f"Files up to {self.max_upload_mb:g} MB, videos up to {_duration_text(self.max_video_seconds)}, "
                f"up to {self.max_frames} frames per video.")


class InputRejected(Exception):
    """An upload the demo cannot or will not process; ``str(err)`` is the message for the user."""


@dataclass
class Analysis:
    """One processed upload: the ``dldfd detect`` row and the face crops of its scored records."""

    row: Dict[str, Any]  # same schema as one element of `dldfd detect --format json`
    rule: VotingRule = VotingRule()  # how the row's verdict was voted
    crops: List[Image.Image] = field(default_factory=list)  # one per record with a box, in order
    image: Optional[Image.Image] = None  # the photo (image analyses only)

    @property
    def scored_records(self) -> List[Dict[str, Any]]:
        return [record for record in self.row["frames"] if record["fake_prob"] is not None]


# --------------------------------------------------------------------------------------------------
# Model and limits
# --------------------------------------------------------------------------------------------------
def resolve_model_spec(cli_model: Optional[str], app_dir: Optional[PathLike] = None) -> str:
    """The model the demo runs: ``--model``, else ``$DLDFD_MODEL``, else the first ``models`` entry
    of the Space card (``README.md`` beside the app, as the Space export writes it), else the
    detector shipped inside the package (:data:`~dldfd_hf.inference.loading.DEFAULT_MODEL`: nothing is fetched
    that nobody asked for)."""
    if cli_model:
        return cli_model
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    if app_dir is not None and (Path(app_dir) / "README.md").is_file():
        models = (metadata_load(Path(app_dir) / "README.md") or {}).get("models") or []
        if models:
            return str(models[0])
    return DEFAULT_MODEL


def check_upload(path: Optional[PathLike], limits: DemoLimits, what: str = "file") -> Path:
    """The uploaded file's path, or :class:`InputRejected` when there is none, it is gone, empty, or too big."""
    if path is None or str(path) == "":
        raise InputRejected(f"Please upload a {what} first.")
    path = Path(path)
    if not path.is_file():
        raise InputRejected(f"The uploaded {what} {path.name!r} is missing on the server; please upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise InputRejected(f"{path.name} is empty (0 bytes).")
    if size > limits.max_upload_mb * 1024 * 1024:
        raise InputRejected(
            f"{path.name} is {size / 1024 / 1024:.1f} MB; this demo accepts files up to {limits.max_upload_mb:g} MB."
        )
    return path


def check_num_frames(num_frames: Any, limits: DemoLimits) -> int:
    try:
        value = int(num_frames)
    except (TypeError, ValueError):
        raise InputRejected(f"The number of frames must be a whole number, got {num_frames!r}.") from None
    if not 1 <= value <= limits.max_frames:
        raise InputRejected(f"The number of frames must be between 1 and {limits.max_frames}, got {value}.")
    return value


def voting_rule(strategy: Any = VotingRule.strategy, threshold: Any = VotingRule.threshold) -> VotingRule:
    """The page's voting settings as a :class:`VotingRule`; :class:`InputRejected` says what is wrong."""
    if strategy not in STRATEGIES:
        raise InputRejected(f"Unknown voting strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    try:
        return VotingRule(strategy, threshold)  # checks the threshold
    except ValueError:
        raise InputRejected(f"The threshold must be a number between 0 and 1, got {threshold!r}.") from None


# --------------------------------------------------------------------------------------------------
# Running the detector
# --------------------------------------------------------------------------------------------------
def analyse_video(
    detector: Any,
    path: Optional[PathLike],
    *,
    num_frames: int = 32,
    rule: VotingRule = VotingRule(),
    limits: DemoLimits = DemoLimits(),
    batch_size: Optional[int] = None,
    progress: Optional[ProgressFn] = None,
) -> Analysis:
    """Sample ``num_frames`` frames, crop and score the faces, vote under ``rule``: the same
    computation as ``dldfd detect --frames N --strategy S --threshold T`` on that file. ``batch_size`` (crops per
    forward pass) defaults to the pipeline's own choice for its device.

    Raises :class:`InputRejected` (with the message for the user) for anything the demo will not
    process: no/empty/too big/unreadable file, a photo, a video over the length limit, bad settings.
    """
    report = progress or (lambda fraction, message: None)
    path = check_upload(path, limits, "video")
    num_frames = check_num_frames(num_frames, limits)
    if media_kind(path) == "image":
        raise InputRejected(f"{path.name} is a photo; use the Image tab for photos.")

    report(0.0, "Reading the video")
    try:
        with VideoReader(path) as reader:
            info = reader.info
            if info.duration > limits.max_video_seconds:
                raise InputRejected(
                    f"{path.name} is {_duration_text(info.duration)} long; this demo accepts videos up to "
                    f"{_duration_text(limits.max_video_seconds)}. Trim it and upload it again."
                )
            report(0.1, f"Decoding {min(num_frames, info.frame_count)} of {info.frame_count} frames")
            frames = reader.sample(num_frames)
            warning = reader.warning
    except MediaError as err:
        raise InputRejected(f"Cannot read {path.name}: {err.reason}.") from None

    report(0.35, f"Finding and scoring faces in {len(frames)} frames")
    result = detector(frames, strategy=rule.strategy, threshold=rule.threshold, batch_size=batch_size,
                      return_crops=True)
    crops = result.pop("crops")
    result["warning"] = result.get("warning") or warning  # the file's, as dldfd detect reports it
    report(0.9, "Preparing the results")
    return Analysis(row=result_row(path.name, result), rule=rule, crops=crops)


def analyse_image(
    detector: Any,
    path: Optional[PathLike],
    *,
    rule: VotingRule = VotingRule(),
    limits: DemoLimits = DemoLimits(),
    batch_size: Optional[int] = None,
) -> Analysis:
    """Score every face in a photo and vote under ``rule``: the same computation as
    ``dldfd detect --strategy S --threshold T`` on it."""
    path = check_upload(path, limits, "photo")
    if media_kind(path) == "video":
        raise InputRejected(f"{path.name} is a video; use the Video tab for videos.")
    try:
        image = load_image(path)
    except MediaError as err:
        raise InputRejected(f"Cannot read {path.name}: {err.reason}.") from None
    except Image.DecompressionBombError as err:
        raise InputRejected(f"{path.name} is too large an image: {err}") from None
    result = detector(image, strategy=rule.strategy, threshold=rule.threshold, batch_size=batch_size,
                      return_crops=True)
    crops = result.pop("crops")
    return Analysis(row=result_row(path.name, result), rule=rule, crops=crops, image=image)


# --------------------------------------------------------------------------------------------------
# What the page shows
# --------------------------------------------------------------------------------------------------
def verdict_text(row: Dict[str, Any]) -> str:
    """One sentence, e.g. ``"FAKE: 23 of 32 frames voted fake, mean 0.81"`` (``faces`` for a photo);
    the row's error (e.g. "no face found in ...") when there is no verdict."""
    if row["label"] is None:
        error = row["error"] or "no verdict"
        return error[:1].upper() + error[1:]
    unit = "faces" if row["kind"] == "image" else "frames"
    verb = "scored" if row["kind"] == "image" else "voted"
    return (f"{row['label'].upper()}: {row['votes']['fake']} of {row['frames_used']} {unit} {verb} fake, "
            f"mean {row['mean_prob']:.2f}")


def verdict_details(row: Dict[str, Any], rule: VotingRule) -> str:
    """How the verdict was reached under ``rule`` and how sure it is (a short paragraph for under
    the verdict).

    The score is the confidence of the label (``row["score"]``): the share of the votes that agree
    with it, or for ``mean`` and ``max_mean`` the mean P(fake) (fake) / 1 - mean P(fake) (real)."""
    if row["label"] is None:
        return ""
    unit = "faces" if row["kind"] == "image" else "frames"
    threshold = rule.threshold
    if row["kind"] == "image" and rule.strategy == "majority":
        text = f"A face counts as fake at P(fake) ≥ {threshold:.2f}; the photo's verdict is the majority of its faces."
    elif rule.strategy == "mean":
        text = f"Verdict: mean P(fake) over the {unit} compared with the threshold {threshold:.2f}."
    elif rule.strategy == "max_mean":
        text = (f"Verdict: each frame's most fake face, then the mean over the frames (the rule of Self-Blended "
                f"Images), compared with the threshold {threshold:.2f}.")
    else:
        text = (f"Verdict: majority vote of the frames (the paper's rule; ties go by the mean); "
                f"a frame votes fake at P(fake) ≥ {threshold:.2f}.")
    if rule.strategy == "majority":
        basis = f"share of the {unit} that agree"
    else:
        basis = "mean P(fake)" if row["label"] == LABEL_NAMES[FAKE] else "1 − mean P(fake)"
    text += f" Score {row['score']:.2f} ({basis})."
    if row["frames_without_face"]:
        text += f" {row['frames_without_face']} sampled frame(s) had no face and did not vote."
    return text


def probability_plot_data(row: Dict[str, Any], threshold: float) -> "pd.DataFrame":
    """A long-form ``pandas.DataFrame`` (``time (s)``, ``P(fake)``, ``series``): one point per scored
    frame, and the threshold as a horizontal line over the same time span."""
    points = [(record["time"] if record["time"] is not None else float(record["index"]), record["fake_prob"])
              for record in row["frames"] if record["fake_prob"] is not None]
    columns = ["time (s)", "P(fake)", "series"]
    if not points:
        return pd.DataFrame(columns=columns)
    times = [t for t, _ in points]
    data = [(t, p, PLOT_SERIES[0]) for t, p in points]
    data += [(min(times), threshold, PLOT_SERIES[1]), (max(times), threshold, PLOT_SERIES[1])]
    return pd.DataFrame(data, columns=columns)


def gallery_items(analysis: Analysis) -> List[Tuple[Image.Image, str]]:
    """``(crop, caption)`` per scored face: its P(fake), then where it is (``0.81 · frame 15 · 0.6 s``;
    ``0.81 · face 2`` in a photo). Short, score first: a gallery cuts long captions at the end."""
    items = []
    for number, (record, crop) in enumerate(zip(analysis.scored_records, analysis.crops), start=1):
        if analysis.row["kind"] == "image":
            where = f"face {number}"
        else:
            where = f"frame {record['index']} · {record['time']:.1f} s"
        items.append((crop, f"{record['fake_prob']:.2f} · {where}"))
    return items


def explain_crops(detector: Any, crops: Sequence[Image.Image], batch_size: int = 16) -> List[Image.Image]:
    """A Grad-CAM heatmap (evidence for "fake", backbone's last stage) over each crop."""
    if not crops:
        return []
    model = detector.model
    parameter = next(model.parameters())
    overlays: List[Image.Image] = []
    for start in range(0, len(crops), batch_size):
        chunk = list(crops[start:start + batch_size])
        pixel_values = detector.image_processor(images=chunk, return_tensors="pt")["pixel_values"]
        cams = grad_cam(model, pixel_values.to(parameter.device, parameter.dtype))
        overlays.extend(overlay_heatmap(crop, cam) for crop, cam in zip(chunk, cams))
    return overlays


def draw_faces(image: Image.Image, records: Sequence[Dict[str, Any]], threshold: float) -> Image.Image:
    """A copy of ``image`` with every scored face boxed (red: fake, green: real) and labelled
    ``#n fake 0.81``; numbers match :func:`faces_table`."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    side = max(canvas.size)
    width = max(2, round(side / 300))
    font = _font(max(12, round(side / 45)))
    scored = [record for record in records if record["box"] is not None and record["fake_prob"] is not None]
    for number, record in enumerate(scored, start=1):
        fake = record["fake_prob"] >= threshold
        colour = FAKE_COLOUR if fake else REAL_COLOUR
        x1, y1, x2, y2 = record["box"]
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        label = f"#{number} {LABEL_NAMES[FAKE if fake else REAL]} {record['fake_prob']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        text_w, text_h = right - left, bottom - top
        pad = max(2, width)
        # Above the box when there is room, else inside its top edge.
        label_top = y1 - text_h - 2 * pad if y1 - text_h - 2 * pad >= 0 else y1
        draw.rectangle((x1, label_top, x1 + text_w + 2 * pad, label_top + text_h + 2 * pad), fill=colour)
        draw.text((x1 + pad - left, label_top + pad - top), label, fill="white", font=font)
    return canvas


def faces_table(records: Sequence[Dict[str, Any]], threshold: float) -> "pd.DataFrame":
    """One row per scored face (numbered as in :func:`draw_faces`), as a ``pandas.DataFrame``."""
    rows = []
    scored = [record for record in records if record["box"] is not None and record["fake_prob"] is not None]
    for number, record in enumerate(scored, start=1):
        rows.append([
            number,
            round(record["fake_prob"], 4),
            LABEL_NAMES[FAKE if record["fake_prob"] >= threshold else REAL],
            round(record["face_score"], 4) if record["face_score"] is not None else None,
            ", ".join(f"{v:.0f}" for v in record["box"]),
        ])
    return pd.DataFrame(rows, columns=FACES_TABLE_COLUMNS)


def write_records_json(row: Dict[str, Any], directory: PathLike) -> Path:
    """Write ``[row]`` exactly as ``dldfd detect --format json`` would, to
    ``<directory>/<name>.<random>.dldfd.json``, atomically; the random part keeps concurrent users
    apart. Nothing else is created: no folder per request.

    The app passes a folder inside Gradio's cache, so Gradio serves the file where it lies and
    removes it on its ``delete_cache`` schedule; a long-running Space does not fill its disk.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{Path(row['path']).stem or 'upload'}.{uuid.uuid4().hex[:8]}.dldfd.json"
    atomic_write_text(path, format_rows([row], "json"))
    return path


def trim_cache(files: Iterable[PathLike], max_bytes: float, keep: Iterable[PathLike] = (),
               min_age_s: float = 0.0) -> List[Path]:
    """Delete the oldest of ``files`` (by modification time) until the rest take at most
    ``max_bytes``; never the ``keep`` files (the request being answered), nor files modified less
    than ``min_age_s`` seconds ago (answers of other requests whose clients may still be
    downloading them: the bound may be exceeded that long). Returns what was deleted.

    The demo's bound on the uploads, crops and records it leaves in Gradio's cache while it runs:
    Gradio deletes them only by age (``delete_cache``) and when the app shuts down. Files already
    gone are skipped, so a concurrent sweep does no harm.
    """
    kept = {os.path.abspath(name) for name in keep}
    entries = []
    for name in {os.path.abspath(name) for name in files}:
        try:
            info = os.stat(name)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            entries.append((info.st_mtime, info.st_size, name))
    total = sum(size for _, size, _ in entries)
    young = time.time() - min_age_s
    removed: List[Path] = []
    for mtime, size, name in sorted(entries):
        if total <= max_bytes or mtime > young:
            break  # sorted by age: the rest are younger still
        if name in kept:
            continue
        try:
            os.remove(name)
        except OSError:
            continue
        total -= size
        removed.append(Path(name))
    return removed


def _duration_text(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()
