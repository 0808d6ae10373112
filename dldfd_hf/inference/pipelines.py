"""The ``"deepfake-video-detection"`` transformers pipeline (registered when ``dldfd_hf`` is imported).

>>> from transformers import pipeline
>>> detector = pipeline("deepfake-video-detection", model="path/to/model-folder")
>>> detector("talk.mp4", num_frames=32, strategy="majority")
{'label': 'fake', 'score': 0.81, 'fake_score': 0.81, 'votes': {'fake': 26, 'real': 6}, 'frames': [...], ...}
>>> detector("interview.mp4")       # score: confidence of the label; fake_score: share of fake votes
{'label': 'real', 'score': 0.75, 'fake_score': 0.25, 'votes': {'fake': 8, 'real': 24}, ...}
>>> pipeline("deepfake-video-detection")   # no model: the detector shipped inside dldfd_hf

Inputs: a video path, an image path, a PIL image, an ``HxWx3`` array (a photo: every face is
scored), a ``TxHxWx3`` array or a list of frames (arrays, PIL images or :class:`~dldfd_hf.media.video.Frame`),
or a list of paths (one result per path). The model's own preprocessing is used: its saved
``preprocessor_config.json`` or, failing that, the config's image size / mean / std.

Frames are decoded and searched for faces a few at a time (:meth:`DeepfakeVideoDetectionPipeline.frame_batch`),
so memory holds one batch of frames plus one face crop per frame, whatever ``num_frames``.

``pipeline(...)`` is transformers' own function. For a DLDFD folder (``model_type`` ``dldfd``) it runs none
of the folder's Python, even when the folder auto-maps an image or video processor of its own: the
config, models and image processor are registered locally, and this pipeline loads no video processor.
For a folder of another ``model_type`` with an ``auto_map``, transformers asks whether to run its code
(and runs it on "y" or ``trust_remote_code=True``): to load a folder or repo you did not make, pass
``trust_remote_code=False`` or use :func:`dldfd_hf.inference.loading.load_video_pipeline`, which never runs
code from a model folder and refuses one that is not a DLDFD model.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForImageClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from ..configuration_dldfd import DLDFDConfig
from ..labels import FAKE, ID2LABEL
from ..media.faces import FaceCropper
from ..media.files import media_kind
from ..media.image import load_image, to_rgb_array
from ..media.video import Frame
from ..media.video_reader import iter_sampled_frames
from ..modeling_dldfd import image_processor_for
from ..models.dldfd import SHIPPED_MODEL_DIR, fake_probabilities
from .voting import FrameRecord, VotingRule, check_strategy, check_threshold

__all__ = ["DeepfakeVideoDetectionPipeline", "FrameList", "TASK", "register_pipeline"]

TASK = "deepfake-video-detection"
# Detection resolution (longer side) and smallest face searched, in detection pixels. Frames of a
# video are many and a face under ~6% of the frame carries little evidence at the model's input
# size (halves MTCNN's work); a photo is one image and may hold small faces in a group.
VIDEO_DETECT_SIZE, VIDEO_MIN_FACE_SIZE = 640, 40
IMAGE_DETECT_SIZE, IMAGE_MIN_FACE_SIZE = 1280, 20


class FrameList:
    """Frames meant as ONE video. Pipelines read a plain list as several inputs, so a list of
    frames passed to the pipeline is wrapped in this first."""

    def __init__(self, frames: Sequence[Any]) -> None:
        self.frames = list(frames)

    def __len__(self) -> int:
        return len(self.frames)


class DeepfakeVideoDetectionPipeline(Pipeline):
    """Face crops from sampled frames -> per-face P(fake) -> a voted verdict.

    Call parameters: ``num_frames`` (32), ``strategy`` (``"majority"`` | ``"mean"`` | ``"max_mean"``, see
    :class:`~dldfd_hf.inference.voting.VotingRule`), ``threshold`` (0.5), ``batch_size`` (crops per
    forward pass; 8 on CPU, 64 on GPU), ``select`` (faces per frame: ``"largest"`` for videos, ``"all"``
    for photos and with ``max_mean`` by default; or ``"confident"``),
    ``min_face_score`` (0.9), ``detect_max_size``, ``return_crops`` (False). ``device`` is given
    when the pipeline is created.

    Output: ``label`` (``"real"``/``"fake"``, None when no face was found), ``score`` (the confidence
    of ``label``, as in transformers' classification pipelines: for majority the share of voting
    frames that agree with it; for mean, mean P(fake) for "fake" and 1 - mean P(fake) for "real"),
    ``fake_score`` (what the verdict thresholds, higher = faker: fake-vote ratio for majority, mean
    P(fake) for mean), ``votes`` ``{"fake", "real"}``, ``mean_prob``, ``fake_ratio``,
    ``frames_used``, ``frames_without_face``, ``frames_sampled``, ``kind`` (``"video"``/``"image"``/
    ``"frames"``), and ``frames``: one record per scored face or per frame without a face,
    ``{"index", "time", "box", "fake_prob", "face_score"}``; ``warning``: None, or why the
    verdict may rest on less than the whole file (a video that looks truncated). With ``return_crops=True`` also
    ``crops``: the face crops (PIL images at the model's input size) in the order of the records
    that have a box. ``label``, ``score`` and ``fake_score`` are None when no face was found.
    """

    # Only the image processor: frames are decoded here. Left None, transformers would also look for a
    # video processor (AutoVideoProcessor), and a folder's auto_map could have it import the folder's Python.
    _load_processor = False
    _load_image_processor = True
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.image_processor is None:
            if not isinstance(self.model.config, DLDFDConfig):
                raise ValueError(
                    f"{TASK}: the model has no image processor (preprocessor_config.json) and is not a DLDFD model; "
                    "pass image_processor=..."
                )
            self.image_processor = image_processor_for(self.model.config)
        self.fake_index = _fake_label_index(self.model.config)
        self.crop_size = _processor_size(self.image_processor) or getattr(self.model.config, "image_size", 224)
        self._croppers: Dict[Tuple[str, float, int], FaceCropper] = {}

    # --- parameters --------------------------------------------------------------------------
    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        # ``batch_size`` means crops per forward pass here: one video is already a batch of crops.
        batch_size = kwargs.pop("batch_size", None)
        if batch_size is not None:
            kwargs["crop_batch_size"] = batch_size
        if _is_frame_sequence(inputs):
            inputs = FrameList(inputs)
        return super().__call__(inputs, batch_size=1, **kwargs)

    def _sanitize_parameters(
        self,
        num_frames: Optional[int] = None,
        strategy: Optional[str] = None,
        threshold: Optional[float] = None,
        crop_batch_size: Optional[int] = None,
        select: Optional[str] = None,
        min_face_score: Optional[float] = None,
        detect_max_size: Optional[int] = None,
        return_crops: Optional[bool] = None,
        **kwargs: Any,
    ) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
        if kwargs:
            raise TypeError(f"{TASK}: unknown parameter(s) {sorted(kwargs)}")
        preprocess: Dict[str, Any] = {}
        forward: Dict[str, Any] = {}
        postprocess: Dict[str, Any] = {}
        if num_frames is not None:
            if int(num_frames) < 1:
                raise ValueError(f"{TASK}: num_frames must be >= 1, got {num_frames!r}")
            preprocess["num_frames"] = int(num_frames)
        if select is not None:
            preprocess["select"] = select
        elif strategy == "max_mean":  # its frame score is the highest P(fake) of ALL the frame's faces
            preprocess["select"] = "all"
        if min_face_score is not None:
            preprocess["min_face_score"] = float(min_face_score)
        if detect_max_size is not None:
            preprocess["detect_max_size"] = int(detect_max_size)
        if crop_batch_size is not None:
            if int(crop_batch_size) < 1:
                raise ValueError(f"{TASK}: batch_size must be >= 1, got {crop_batch_size!r}")
            forward["crop_batch_size"] = int(crop_batch_size)
        if strategy is not None:
            postprocess["strategy"] = check_strategy(strategy, TASK)
        if threshold is not None:
            postprocess["threshold"] = check_threshold(threshold, TASK)
        if return_crops is not None:
            postprocess["return_crops"] = bool(return_crops)
        return preprocess, forward, postprocess

    # --- stages -------------------------------------------------------------------------------
    def preprocess(
        self,
        inputs: Any,
        num_frames: int = 32,
        select: Optional[str] = None,
        min_face_score: float = 0.9,
        detect_max_size: Optional[int] = None,
    ) -> Dict[str, Any]:
        warning = None
        if isinstance(inputs, (str, os.PathLike)) and media_kind(inputs) != "image":
            # Streamed; the file is opened and indexed now, so a bad file fails here.
            frames = iter_sampled_frames(inputs, num_frames)
            kind, warning = "video", frames.warning
        else:
            kind, frames = self._frames(inputs)
        if select is None:
            select = "all" if kind == "image" else "largest"
        if detect_max_size is None:
            detect_max_size = IMAGE_DETECT_SIZE if kind == "image" else VIDEO_DETECT_SIZE
        min_face_size = IMAGE_MIN_FACE_SIZE if kind == "image" else VIDEO_MIN_FACE_SIZE
        cropper = self.face_cropper(select, min_face_score, min(min_face_size, detect_max_size))
        records: List[FrameRecord] = []
        crops: List[Image.Image] = []
        frames_sampled = 0
        try:
            # A batch of frames at a time (whole MTCNN batches, so the faces found do not depend on
            # it): only the face crops are kept, never all the decoded frames.
            for chunk in _batches(frames, self.frame_batch(cropper)):
                faces_per_frame = cropper([frame.image for frame in chunk], detect_max_size=detect_max_size)
                for frame, faces in zip(chunk, faces_per_frame):
                    time = frame.time if kind == "video" else None
                    if not faces:
                        records.append(FrameRecord(index=frame.index, time=time, box=None, fake_prob=None))
                    for face in faces:
                        records.append(FrameRecord(
                            index=frame.index, time=time, box=face.box, fake_prob=None, face_score=face.score
                        ))
                        crops.append(face.crop)
                frames_sampled += len(chunk)
        finally:
            close = getattr(frames, "close", None)  # a video's frame stream: closes the file
            if close is not None:
                close()
        return {"records": records, "crops": crops, "kind": kind, "frames_sampled": frames_sampled, "warning": warning}

    def _forward(self, model_inputs: Dict[str, Any], crop_batch_size: Optional[int] = None) -> Dict[str, Any]:
        # On CPU small batches are faster per image (activations stay in cache); GPUs like big ones.
        batch_size = crop_batch_size or self._batch_size or (8 if self.device.type == "cpu" else 64)
        # preprocess() passes the crops: their pixel values are made one forward batch at a time, so
        # memory does not grow with the number of crops. Callers of forward() may pass pixel_values.
        pixel_values = model_inputs.pop("pixel_values", None)
        crops = model_inputs.get("crops") or []
        count = len(pixel_values) if pixel_values is not None else len(crops)
        probs = torch.zeros(0)
        if count:
            dtype = next(self.model.parameters()).dtype
            chunks = []
            for start in range(0, count, batch_size):
                if pixel_values is not None:
                    batch = pixel_values[start:start + batch_size]
                else:
                    batch = self.image_processor(images=crops[start:start + batch_size], return_tensors="pt")["pixel_values"]
                # channels_last input: the faster convolution path on CPU and on tensor cores alike.
                batch = batch.to(self.device, dtype, memory_format=torch.channels_last)
                chunks.append(fake_probabilities(self.model(pixel_values=batch).logits, self.fake_index))
            probs = torch.cat(chunks)
        return {"fake_probs": probs, **model_inputs}

    def postprocess(
        self,
        model_outputs: Dict[str, Any],
        strategy: str = VotingRule.strategy,
        threshold: float = VotingRule.threshold,
        return_crops: bool = False,
    ) -> Dict[str, Any]:
        probs = iter(model_outputs["fake_probs"].tolist())
        records = model_outputs["records"]
        for record in records:
            if record.box is not None:
                record.fake_prob = float(next(probs))
        verdict = VotingRule(strategy, threshold).vote_records(records)
        result = verdict.to_dict()
        result["kind"] = model_outputs["kind"]
        result["frames_sampled"] = model_outputs["frames_sampled"]
        result["warning"] = model_outputs.get("warning")
        if return_crops:
            result["crops"] = model_outputs["crops"]
        return result

    # --- helpers ------------------------------------------------------------------------------
    def face_cropper(
        self, select: str = "largest", min_face_score: float = 0.9, min_face_size: int = VIDEO_MIN_FACE_SIZE
    ) -> FaceCropper:
        """The face cropper (MTCNN) for these settings, built once and kept (crops at the model's input size)."""
        key = (select, float(min_face_score), int(min_face_size))
        if key not in self._croppers:
            self._croppers[key] = FaceCropper(
                crop_size=self.crop_size, select=select, min_score=min_face_score, device=self.device,
                min_face_size=min_face_size,
            )
        return self._croppers[key]

    @staticmethod
    def frame_batch(cropper: FaceCropper) -> int:
        """Frames decoded and searched for faces at a time: two MTCNN batches."""
        return 2 * cropper.batch_size

    @staticmethod
    def _frames(inputs: Any) -> Tuple[str, List[Frame]]:
        """The frames of any input but a video file (read by :meth:`preprocess` itself)."""
        if isinstance(inputs, (str, os.PathLike)):
            return "image", [Frame(index=0, time=0.0, image=np.asarray(load_image(inputs)))]
        if isinstance(inputs, Image.Image) or (isinstance(inputs, np.ndarray) and inputs.ndim in (2, 3)):
            return "image", [Frame(index=0, time=0.0, image=to_rgb_array(inputs))]
        if isinstance(inputs, FrameList):
            inputs = inputs.frames
        if isinstance(inputs, (np.ndarray, list, tuple)):
            if len(inputs) == 0:
                raise ValueError(f"{TASK}: the list of frames is empty")
            frames = [
                item if isinstance(item, Frame) else Frame(index=i, time=0.0, image=to_rgb_array(item))
                for i, item in enumerate(inputs)
            ]
            kind = "video" if all(isinstance(item, Frame) for item in inputs) else "frames"
            return kind, frames
        raise TypeError(
            f"{TASK}: expected a video/image path, a PIL image, an array or a list of frames; got {type(inputs).__name__}"
        )


def _batches(items: Iterable[Any], size: int) -> Iterator[List[Any]]:
    iterator = iter(items)
    while True:
        chunk = list(itertools.islice(iterator, size))
        if not chunk:
            return
        yield chunk


def _is_frame_sequence(inputs: Any) -> bool:
    return (
        isinstance(inputs, (list, tuple))
        and len(inputs) > 0
        and all(isinstance(item, (np.ndarray, Image.Image, Frame)) for item in inputs)
    )


def _fake_label_index(config: Any) -> int:
    for label, index in (getattr(config, "label2id", None) or {}).items():
        if str(label).lower() == ID2LABEL[FAKE]:
            return int(index)
    return FAKE


def _processor_size(processor: Any) -> Optional[int]:
    size = getattr(processor, "size", None)
    if size is None:
        return None
    if isinstance(size, int):
        return size
    getter = size.get if hasattr(size, "get") else lambda key, default=None: getattr(size, key, default)
    return getter("height", None) or getter("shortest_edge", None)


def register_pipeline() -> None:
    """Register ``"deepfake-video-detection"`` with transformers (idempotent)."""
    if TASK in PIPELINE_REGISTRY.get_supported_tasks():
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=DeepfakeVideoDetectionPipeline,
        pt_model=AutoModelForImageClassification,
        # pipeline(TASK) without a model: the detector installed with the package (a local folder,
        # so nothing is downloaded; transformers logs which model it defaulted to).
        default={"model": (str(SHIPPED_MODEL_DIR), "main")},
        type="image",
    )
