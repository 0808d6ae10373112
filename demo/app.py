"""DLDFD deepfake detector: the Gradio demo (also the Hugging Face Space's app file).

    python demo/app.py --model MODEL [--port P] [--device D]

MODEL is anything ``dldfd detect --model`` accepts: a Hub id, a local model folder, or an
architecture name such as ``dldfd_tiny`` (random weights: smoke tests only). In a Space the model
comes from the ``DLDFD_MODEL`` variable, else from the ``models`` entry of the Space card; with
none of these the app uses the detector shipped inside ``dldfd_hf`` (offline).
The logic lives in ``analysis.py`` beside this file; this file is the page and its wiring.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

# Before gradio is imported: no usage analytics or version checks sent home, so the app runs
# offline (and tells no one what it is used for). The page's Blocks also sets analytics_enabled=False.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from dldfd_hf._io import atomic_write_bytes  # noqa: E402
from dldfd_hf.inference.loading import ModelLoadError, describe_model, load_pipeline_with_notice  # noqa: E402
from dldfd_hf.inference.voting import STRATEGIES, VotingRule  # noqa: E402

# The sibling module: running app.py (python demo/app.py, or the Space) puts this folder on the path.
from analysis import (  # noqa: E402
    FAKE_COLOUR,
    FACES_TABLE_COLUMNS,
    PLOT_SERIES,
    THRESHOLD_COLOUR,
    Analysis,
    DemoLimits,
    InputRejected,
    analyse_image,
    analyse_video,
    draw_faces,
    explain_crops,
    faces_table,
    gallery_items,
    probability_plot_data,
    resolve_model_spec,
    trim_cache,
    verdict_details,
    verdict_text,
    voting_rule,
    write_records_json,
)

logger = logging.getLogger("dldfd.demo")

APP_DIR = Path(__file__).resolve().parent
CONCURRENCY_ID = "detector"  # both tabs share one model: one concurrency limit for both
RECORDS_FOLDER = "dldfd-records"  # inside Gradio's cache: the JSON downloads, removed by delete_cache
CACHE_LIFETIME_S = 3600  # uploads, crops and records older than this are deleted, checked this often
# The cache bound never deletes a file younger than this: it may be the answer of another request
# whose client is still downloading it (deleting it cut such downloads short under load).
KEEP_ANSWERS_S = 300
# Tiles of one size whatever the count (gradio would widen 2 faces to the full width), rows as tall
# as their content (gradio's "auto" keeps a 450 px minimum).
GALLERY = dict(height="fit-content", fit_columns=False, object_fit="contain")

DESCRIPTION = """\
# DLDFD deepfake detector
Faces are found with MTCNN, cropped (1.3× box) and scored by a **DLDFD** network (augmented 3×3
layers + a CNN backbone, Singh & Ramachandra); a video's verdict is the vote of its sampled frames.
Label convention: P(fake) near 1 means *fake*. This is a research demo: do not use it to accuse anyone.
"""


def _verdict_markdown(analysis: Analysis) -> str:
    text = verdict_text(analysis.row)
    if analysis.row["label"] is None:
        return _message(text)
    return f"## {text}\n{verdict_details(analysis.row, analysis.rule)}"


def _summary(model_name: str) -> str:
    """`` — what it was trained on`` for the shipped detector, nothing for other models."""
    line = describe_model(model_name)
    return f" — {line.split(': ', 1)[1]}" if line != model_name else ""


def _message(text: str) -> str:
    return f"### ⚠ {text}"


def build_demo(detector: Any, model_name: str, limits: DemoLimits, notice: Optional[str] = None,
               concurrency: int = 1) -> gr.Blocks:
    """The page: a Video tab and an Image tab, each with a Grad-CAM explanation."""
    with gr.Blocks(title="DLDFD deepfake detector", delete_cache=(CACHE_LIFETIME_S, CACHE_LIFETIME_S),
                   analytics_enabled=False) as demo:
        # The records JSON is written inside Gradio's cache: served in place, no copy left behind
        # elsewhere, and deleted with the rest of the cache on the delete_cache schedule.
        records_dir = Path(demo.GRADIO_CACHE) / RECORDS_FOLDER
        answers = _Answers(detector, limits, records_dir)
        _page_header(model_name, limits, notice)
        with gr.Tab("Video"):
            video_button, video_inputs, video_outputs = _video_tab(limits)
        with gr.Tab("Image"):
            image_button, image_inputs, image_outputs = _image_tab()

        def run_video(video: Optional[str], num_frames: int, strategy: str, threshold: float, explain: bool,
                      progress: gr.Progress = gr.Progress()) -> tuple:
            _bound_cache(demo, records_dir, limits, video)
            return answers.video(video, num_frames, strategy, threshold, explain, progress)

        def run_image(photo: Optional[str], threshold: float, explain: bool) -> tuple:
            _bound_cache(demo, records_dir, limits, photo)
            return answers.image(photo, threshold, explain)

        video_button.click(
            run_video,
            inputs=video_inputs,
            outputs=video_outputs,
            api_name="analyse_video", concurrency_limit=concurrency, concurrency_id=CONCURRENCY_ID,
        )
        image_button.click(
            run_image,
            inputs=image_inputs,
            outputs=image_outputs,
            api_name="analyse_image", concurrency_limit=concurrency, concurrency_id=CONCURRENCY_ID,
        )
    return demo


def _page_header(model_name: str, limits: DemoLimits, notice: Optional[str]) -> None:
    """What the demo does, the model that answers (with the upload limits), and any warning about it."""
    gr.Markdown(DESCRIPTION)
    gr.Markdown(f"Model: `{model_name}`{_summary(model_name)} · {limits.describe()}")
    if notice:
        gr.Markdown(f"⚠ **Warning: {notice}**")


def _video_tab(limits: DemoLimits) -> tuple[gr.Button, list[gr.components.Component], list[gr.components.Component]]:
    """The Video tab: its button, then run_video's inputs and outputs, each in the handler's order."""
    with gr.Row():
        with gr.Column(scale=2):
            inputs = _video_settings(limits)
            button = gr.Button("Analyse video", variant="primary", elem_id="video-button")
        with gr.Column(scale=3):
            verdict = gr.Markdown("Upload a video and press **Analyse video**.", label="verdict",
                                  elem_id="video-verdict")
            plot = gr.LinePlot(
                x="time (s)", y="P(fake)", color="series", y_lim=[0, 1],
                color_map={PLOT_SERIES[0]: FAKE_COLOUR, PLOT_SERIES[1]: THRESHOLD_COLOUR},
                title="Fake probability over time", height=320, label="P(fake) per frame", color_title="",
            )
            records = gr.File(label="Per-frame records (JSON, the schema of dldfd detect --format json)")
    gallery = gr.Gallery(label="Face crops: P(fake) · frame · time", columns=6, **GALLERY, elem_id="video-gallery")
    with gr.Accordion("Explanation: where the model looked (Grad-CAM, evidence for fake)", open=True):
        heatmaps = gr.Gallery(label="Grad-CAM", show_label=False, columns=6, **GALLERY, elem_id="video-heatmaps")
    return button, inputs, [verdict, plot, gallery, heatmaps, records]


def _video_settings(limits: DemoLimits) -> list[gr.components.Component]:
    """The video upload and the analysis settings: run_video's inputs."""
    video = gr.Video(label="Video", sources=["upload"], height=300, elem_id="video-input")
    num_frames = gr.Slider(1, limits.max_frames, value=min(32, limits.max_frames), step=1,
                           label="Frames to sample", info="evenly spaced over the video", elem_id="video-frames")
    strategy = gr.Radio(list(STRATEGIES), value=VotingRule.strategy, label="Voting strategy",
                        info="majority: the paper's vote of the frames; mean: mean P(fake); "
                             "max_mean: each frame's most fake face (all faces), then the mean")
    threshold = gr.Slider(0.0, 1.0, value=VotingRule.threshold, step=0.01, label="Threshold",
                          info="P(fake) at which a frame counts as fake")
    explain = gr.Checkbox(value=True, label="Explain with Grad-CAM heatmaps")
    return [video, num_frames, strategy, threshold, explain]


def _image_tab() -> tuple[gr.Button, list[gr.components.Component], list[gr.components.Component]]:
    """The Image tab: its button, then run_image's inputs and outputs, each in the handler's order."""
    with gr.Row():
        with gr.Column(scale=2):
            # No file_types: gradio would refuse other files with a generic error before the
            # handler can say what is wrong with them.
            photo = gr.File(label="Photo (JPEG, PNG, WebP, ...)", type="filepath", elem_id="image-input")
            threshold = gr.Slider(0.0, 1.0, value=VotingRule.threshold, step=0.01, label="Threshold",
                                  info="P(fake) at which a face counts as fake")
            explain = gr.Checkbox(value=True, label="Explain with Grad-CAM heatmaps")
            button = gr.Button("Analyse photo", variant="primary", elem_id="image-button")
            records = gr.File(label="Records (JSON, the schema of dldfd detect --format json)")
        with gr.Column(scale=3):
            verdict = gr.Markdown("Upload a photo and press **Analyse photo**.", label="verdict",
                                  elem_id="image-verdict")
            boxed = gr.Image(label="Faces found", type="pil", interactive=False)
            faces = gr.Dataframe(headers=FACES_TABLE_COLUMNS, label="Faces", interactive=False)
            heatmaps = gr.Gallery(label="Explanation: Grad-CAM per face (P(fake) · face)",
                                  columns=4, **GALLERY, elem_id="image-heatmaps")
    return button, [photo, threshold, explain], [verdict, boxed, faces, heatmaps, records]


def _bound_cache(demo: gr.Blocks, records_dir: Path, limits: DemoLimits, *keep: Optional[str]) -> None:
    """Keep what this app left in Gradio's cache under ``limits.max_cache_mb`` (oldest first)."""
    try:
        files = [name for names in demo.temp_file_sets for name in list(names)]
        if records_dir.is_dir():
            files += [str(path) for path in records_dir.iterdir()]
        removed = trim_cache(files, limits.max_cache_mb * 2**20, keep=[name for name in keep if name],
                             min_age_s=KEEP_ANSWERS_S)
        if removed:
            logger.info("cache over %g MB: removed the %d oldest file(s)", limits.max_cache_mb, len(removed))
    except Exception:  # the bound must never cost an answer
        logger.exception("trimming the cache failed")


def _image_file(image: Any, folder: Path) -> str:
    """``image`` written to a file of its own (PNG), whose path the output returns.

    Returned as a PIL image, Gradio writes it to a path named by its content, in place: a second
    request with the same crop rewrote (truncated) the file while the first one's client was
    downloading it ("Too little data for declared Content-Length"). A file of its own is copied by
    Gradio atomically, and a copy that exists already is reused, never rewritten.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path = folder / f"{uuid.uuid4().hex}.png"
    atomic_write_bytes(path, buffer.getvalue())
    return str(path)


@dataclass(frozen=True)
class _Answers:
    """What both tabs answer with: the detector, the limits, and the folder for the answers' files."""

    detector: Any
    limits: DemoLimits
    records_dir: Path

    def video(self, video: Optional[str], num_frames: int, strategy: str, threshold: float, explain: bool,
              progress: gr.Progress) -> tuple:
        """run_video's outputs: verdict, plot data, crops, heatmaps, records file; a message when it fails."""
        try:
            analysis = analyse_video(self.detector, video, num_frames=num_frames,
                                     rule=voting_rule(strategy, threshold), limits=self.limits,
                                     progress=lambda fraction, text: progress(fraction, desc=text))
            if explain and analysis.crops:
                progress(0.92, desc="Explaining (Grad-CAM)")
            heatmaps = explain_crops(self.detector, analysis.crops) if explain else []
            crops = gallery_items(analysis)
            return (
                _verdict_markdown(analysis),
                probability_plot_data(analysis.row, analysis.rule.threshold),
                self._files(crops),
                self._files([(heatmap, caption) for heatmap, (_, caption) in zip(heatmaps, crops)]),
                str(write_records_json(analysis.row, self.records_dir)),
            )
        except InputRejected as err:
            return _message(str(err)), None, [], [], None
        except Exception as err:  # a bug or an odd file must not take the app down; say what happened
            logger.exception("video analysis failed")
            return _message(f"Unexpected error ({type(err).__name__}): {err}"), None, [], [], None

    def image(self, photo: Optional[str], threshold: float, explain: bool) -> tuple:
        """run_image's outputs: verdict, boxed photo, faces table, heatmaps, records file; a message when it fails."""
        try:
            analysis = analyse_image(self.detector, photo, rule=voting_rule(threshold=threshold), limits=self.limits)
            heatmaps = explain_crops(self.detector, analysis.crops) if explain else []
            records, threshold = analysis.row["frames"], analysis.rule.threshold
            return (
                _verdict_markdown(analysis),
                _image_file(draw_faces(analysis.image, records, threshold), self.records_dir),
                faces_table(records, threshold),
                self._files([(heatmap, caption) for heatmap, (_, caption) in zip(heatmaps, gallery_items(analysis))]),
                str(write_records_json(analysis.row, self.records_dir)),
            )
        except InputRejected as err:
            return _message(str(err)), None, None, [], None
        except Exception as err:
            logger.exception("image analysis failed")
            return _message(f"Unexpected error ({type(err).__name__}): {err}"), None, None, [], None

    def _files(self, items: Sequence[tuple]) -> list[tuple[str, str]]:
        """``(image, caption)`` pairs as ``(file, caption)``: each image in a file of its own."""
        return [(_image_file(image, self.records_dir), caption) for image, caption in items]


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="DLDFD deepfake detector demo (Gradio)")
    parser.add_argument("--model", default=None,
                        help="Hub id, model folder or DLDFD architecture name "
                             "(default: $DLDFD_MODEL, else the Space card's model, else the detector shipped with dldfd-hf)")
    parser.add_argument("--device", default=os.environ.get("DLDFD_DEVICE"),
                        help="torch device, e.g. cpu or cuda:0 (default: $DLDFD_DEVICE, else cuda if available)")
    parser.add_argument("--host", default=None, help="address to serve on (default: gradio's, $GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, default=None, help="port (default: gradio's, $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--max-upload-mb", type=float, default=_env_float("DLDFD_MAX_UPLOAD_MB", 100.0),
                        help="largest upload accepted, MB (100; $DLDFD_MAX_UPLOAD_MB)")
    parser.add_argument("--max-video-seconds", type=float, default=_env_float("DLDFD_MAX_VIDEO_SECONDS", 300.0),
                        help="longest video accepted, seconds (300; $DLDFD_MAX_VIDEO_SECONDS)")
    parser.add_argument("--max-frames", type=int, default=int(_env_float("DLDFD_MAX_FRAMES", 64)),
                        help="most frames a user may sample per video (64; $DLDFD_MAX_FRAMES)")
    parser.add_argument("--max-cache-mb", type=float, default=_env_float("DLDFD_MAX_CACHE_MB", 1000.0),
                        help="most the uploads, crops and records may take in Gradio's cache while the app runs, "
                             "MB; the oldest go first (1000; $DLDFD_MAX_CACHE_MB)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="analyses run at the same time (1: the model uses every core already)")
    parser.add_argument("--queue-size", type=int, default=20, help="requests that may wait in the queue (20)")
    args = parser.parse_args(argv)
    for name in ("max_upload_mb", "max_video_seconds", "max_frames", "max_cache_mb", "concurrency", "queue_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: Optional[Sequence[str]] = None, *, block: bool = True) -> gr.Blocks:
    """Load the model, build the page, serve it. ``block=False`` returns once the server is up."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    limits = DemoLimits(max_upload_mb=args.max_upload_mb, max_video_seconds=args.max_video_seconds,
                        max_frames=args.max_frames, max_cache_mb=args.max_cache_mb)
    model_name = resolve_model_spec(args.model, APP_DIR)
    logger.info("loading %s", model_name)
    try:
        detector, notice = load_pipeline_with_notice(model_name, device=args.device)
    except ModelLoadError as err:
        raise SystemExit(f"demo/app.py: {err}") from None
    demo = build_demo(detector, model_name, limits, notice=notice, concurrency=args.concurrency)
    demo.queue(max_size=args.queue_size)
    if block:
        exit_on_sigterm()
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=f"{int(args.max_upload_mb * 1024)}kb",
                prevent_thread_lock=not block, show_error=True)
    return demo


def exit_on_sigterm() -> None:
    """SIGTERM (``docker stop``, a Space restart, ``kill``) ends the app as Ctrl-C does: Gradio then
    closes the server, and its shutdown deletes the uploads, crops and records this app put in its
    cache. Python's default for SIGTERM ends the process at once and leaves them behind. Only from
    the main thread (where signal handlers live); elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    main()
