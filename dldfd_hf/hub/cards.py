"""The model card, generated from the exported config and real evaluation results.

Templates are package data in ``dldfd_hf/templates/`` (an installed package cannot read a folder
outside itself); they are Jinja2, rendered by ``huggingface_hub``'s ``ModelCard.from_template``.

Results are read by :func:`dldfd_hf.metrics.results.load_evaluation` (the JSON of
``examples/evaluate.py`` or a training run's ``results.json``); this module only renders them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import timm
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .._io import PathLike
from ..data.ffpp import ABBREVIATIONS
from ..data.report import corpus_settings
from ..metrics.paper import table2_row
from ..metrics.results import EvaluationReport, load_evaluation
from ..templates import template_text

__all__ = ["eval_results", "render_model_card", "training_details"]


# metric key -> (model-index metric type, display name, shown as a percentage)
METRICS = {
    "tcr": ("accuracy", "TCR", True),
    "balanced_accuracy": ("balanced_accuracy", "balanced accuracy", True),
    "auc": ("roc_auc", "AUC", False),
    "ap": ("average_precision", "AP", False),
    "eer": ("eer", "EER", True),
    "mean_prob_tcr": ("accuracy", "TCR of the mean probability", True),
}
LEVELS = {"frame": "image-classification", "video": "video-classification"}
FFPP_URL = "https://github.com/ondyari/FaceForensics"
FFPP_TERMS_URL = "http://kaldir.vc.in.tum.de/faceforensics_tos.pdf"
DEFAULT_DATASET = "FaceForensics++"


# Training-run keys shown on the card (train.py config + corpus build settings) and their labels.
TRAINING_FIELDS = {
    "compression": "FF++ compression",
    "frames_per_video": "frames per video",
    "crop_size": "face crop size (px)",
    "scale": "face box scale (around the MTCNN box)",
    "image_format": "crop image format",
    "protocol": "protocol",
    "model": "architecture",
    "model_kwargs": "architecture arguments",
    "pretrained_backbone": "ImageNet-initialised backbone",
    "init_from": "fine-tuned from",
    "image_size": "input size (px)",
    "hflip": "horizontal flip probability",
    "balanced_sampling": "class-balanced sampling",
    "max_train_samples": "training frames capped at",
    "epochs": "epochs",
    "batch_size": "batch size per device",
    "num_processes": "processes",
    "gradient_accumulation_steps": "gradient accumulation steps",
    "learning_rate": "learning rate (Adam)",
    "betas": "Adam betas",
    "weight_decay": "weight decay",
    "lr_scheduler": "learning-rate schedule",
    "pos_weight": "BCE pos_weight (fake class)",
    "mixed_precision": "mixed precision",
    "seed": "seed",
    "metric_for_best_model": "best model chosen by (validation)",
    "best_epoch": "best epoch",
    "video_strategy": "video verdict",
}


def training_details(source: Union[PathLike, Mapping[str, Any]]) -> Dict[str, Any]:
    """The card's training details from a training run's ``results.json`` (a path or the object).

    Keys are those of :data:`TRAINING_FIELDS`: the run's config, the BCE ``pos_weight`` actually
    used, the best epoch, and the build settings of its corpus when that folder is on this machine.
    Paths (data, output folder) are left out: they mean nothing on the Hub.
    """
    if not isinstance(source, Mapping):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"training results file {path} does not exist")
        source = json.loads(path.read_text(encoding="utf-8"))
    config = source.get("config")
    if not isinstance(config, Mapping):
        raise ValueError("training results have no 'config' object: expected examples/train.py's results.json")
    details: Dict[str, Any] = dict(corpus_settings(source.get("data")))
    details.update(config)
    details["protocol"] = source.get("protocol") or config.get("protocol")
    details["pos_weight"] = source.get("pos_weight")
    details["num_processes"] = source.get("num_processes")
    best = source.get("best") or {}
    details["best_epoch"] = best.get("epoch")
    if details.get("frames_per_video", 0) is None:
        details["frames_per_video"] = "all"
    return {key: details[key] for key in TRAINING_FIELDS if details.get(key) not in (None, {}, [])}


def _protocol_label(protocol: str) -> str:
    kind, _, method = protocol.partition(":")
    if kind == "combined":
        return "combined (real vs all manipulations)"
    short = ABBREVIATIONS.get(method, method)
    return f"single (real vs {short})" if kind == "single" else f"cross (test on unseen {short})"


def _dataset_type(report: EvaluationReport) -> str:
    return str(report.dataset.get("id") or report.dataset.get("name") or "faceforensics++")


def eval_results(report: EvaluationReport) -> List[EvalResult]:
    """One ``EvalResult`` per protocol x level x metric, for the card's ``model-index``.

    Levels are separate tasks (frame = image-classification, video = video-classification) and each
    protocol is its own dataset config (``c40-combined``, ``c40-single-Deepfakes``, ...), so the Hub
    groups them correctly; ``dataset.args.protocol`` keeps the protocol name.
    """
    dataset_name = str(report.dataset.get("name") or DEFAULT_DATASET)
    if report.compression:
        dataset_name = f"{dataset_name} {report.compression}"
    out = []
    for result in report.results:
        for level, task_type in LEVELS.items():
            for key, value in result.scores(level).items():
                metric_type, display, _ = METRICS[key]
                out.append(EvalResult(
                    task_type=task_type,
                    task_name=f"Deepfake detection ({level} level)",
                    dataset_type=_dataset_type(report),
                    dataset_name=f"{dataset_name}, {_protocol_label(result.protocol)}",
                    dataset_config="-".join(filter(None, (report.compression, result.protocol.replace(":", "-")))),
                    dataset_split=result.split,
                    dataset_args={"protocol": result.protocol,
                                  **({"compression": report.compression} if report.compression else {})},
                    metric_type=metric_type,
                    metric_name=f"{level.capitalize()} {display}",
                    metric_config=key,
                    metric_value=value,
                ))
    return out


# --------------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------------
def _cell(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f}"


def _results_tables(report: EvaluationReport) -> List[Dict[str, Any]]:
    """Paper-style Table 2 blocks (combined / single / cross): our metrics beside the paper's TCR.

    Rows come from :func:`dldfd_hf.metrics.paper.table2_row`, the same numbers ``examples/evaluate.py``
    prints. The paper's TCR (measured on FF++ c40) is left out for results on another compression.
    """
    methods = report.methods
    abbreviations = [ABBREVIATIONS.get(m, m) for m in methods]
    tables = []
    for kind, title in (("combined", "Combined evaluation"), ("single", "Single evaluation"),
                        ("cross", "Cross evaluation")):
        rows = []
        for result in (r for r in report.results if r.kind == kind):
            method = result.method
            if kind == "combined":
                train = test = ", ".join(abbreviations)
            elif kind == "single":
                train = test = ABBREVIATIONS.get(method, method)
            else:
                train = ", ".join(a for m, a in zip(methods, abbreviations) if m != method)
                test = ABBREVIATIONS.get(method, method)
            row = table2_row(result.protocol, {level: result.scores(level) for level in LEVELS})
            paper = row["paper_tcr"] if report.compression in (None, "c40") else None
            rows.append([train, test, _cell(paper)] + [_cell(row[key]) for key in (
                "frame_tcr", "frame_balanced_accuracy", "frame_auc",
                "video_tcr", "video_balanced_accuracy", "video_auc")])
        if rows:
            tables.append({"title": title, "rows": rows})
    return tables


def _always_fake_share(report: EvaluationReport) -> Optional[float]:
    """Share of fake videos in the first protocol's test split: the TCR of always answering "fake"."""
    for result in report.results:
        counts = result.video_counts()
        if counts and sum(counts):
            return 100.0 * counts[1] / sum(counts)
    return None


def _registered_name(repo_id: Optional[str]) -> Optional[str]:
    """The timm ``name.tag`` whose pretrained cfg points at ``repo_id``, if any."""
    if not repo_id:
        return None

    for name in timm.list_pretrained("dldfd_*"):
        if timm.models.get_pretrained_cfg(name).hf_hub_id == repo_id:
            return name
    return None


def _base_model(backbone: str, backbone_pretrained: Optional[bool]) -> Optional[str]:
    # Claimed only when the training details say the run started from the tagged ImageNet checkpoint
    # ("resnet50.tv_in1k"): without them we cannot know, and a wrong base model misleads users.
    if not backbone_pretrained or "." not in backbone:
        return None
    return f"timm/{backbone}"


def _training_rows(training: Mapping[str, Any]) -> List[List[str]]:
    rows = []
    for key, value in training.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:g}"
        rows.append([TRAINING_FIELDS.get(key, key.replace("_", " ")), str(value)])
    return rows


def render_model_card(
    config: Mapping[str, Any],
    *,
    repo_id: Optional[str] = None,
    results: Optional[Union[EvaluationReport, PathLike, Mapping[str, Any]]] = None,
    training: Optional[Mapping[str, Any]] = None,
    trained: Optional[bool] = None,
    license: Optional[str] = None,
) -> ModelCard:
    """The model card of an exported folder.

    Args:
        config: the exported ``config.json`` (:func:`dldfd_hf.model_folder.hub_config`).
        repo_id: the Hub id, used in the usage snippets (a placeholder when None).
        results: evaluation results (see :func:`~dldfd_hf.metrics.results.load_evaluation`); None = the card says there are none
            and carries no metric values at all.
        training: training details shown as a table: :func:`training_details` of the run's
            ``results.json``, or any mapping (keys of :data:`TRAINING_FIELDS` get readable labels).
        trained: False puts a warning at the top: the weights are not a trained detector.
        license: overrides the license of the timm pretrained cfg (apache-2.0).
    """
    report = load_evaluation(results) if results is not None else None
    training = dict(training or {})
    name = repo_id.split("/")[-1] if repo_id else f"{config.get('architecture', 'dldfd')}"
    return ModelCard.from_template(
        _card_data(config, name, report, training, license),
        template_str=template_text("model_card.md"),
        title=name,
        repo_id=repo_id or "<org>/<name>",
        has_repo_id=bool(repo_id),
        registered_name=_registered_name(repo_id),
        trained=trained,
        training_rows=_training_rows(training),
        ffpp_url=FFPP_URL,
        ffpp_terms_url=FFPP_TERMS_URL,
        **_architecture_fields(config),
        **_results_fields(report),
    )


def _card_data(config: Mapping[str, Any], name: str, report: Optional[EvaluationReport],
               training: Mapping[str, Any], license: Optional[str]) -> ModelCardData:
    """The card's YAML header: licence, tags, datasets, base model and the ``model-index`` results."""
    datasets = [str((report.dataset.get("name") if report else None) or DEFAULT_DATASET)]
    return ModelCardData(
        model_name=name,
        license=license or config.get("pretrained_cfg", {}).get("license") or "apache-2.0",
        library_name="timm",
        pipeline_tag="image-classification",
        tags=["image-classification", "deepfake-detection", "faceforensics", "dldfd", "timm", "transformers",
              "custom_code"],
        datasets=datasets,
        base_model=_base_model(str(config.get("backbone", "")), training.get("pretrained_backbone")),
        metrics=sorted({METRICS[k][0] for r in report.results for level in LEVELS for k in r.scores(level)})
        if report else None,
        eval_results=eval_results(report) if report else None,
    )


def _architecture_fields(config: Mapping[str, Any]) -> Dict[str, Any]:
    """Template fields describing the network, read from the exported config."""
    branches, branch_chans = int(config.get("stem_branches", 3)), int(config.get("stem_branch_chans", 64))
    return dict(
        architecture=config.get("architecture", "dldfd_resnet50"),
        backbone=str(config.get("backbone", "")),
        backbone_kwargs=config.get("backbone_kwargs") or {},
        stem_out_chans=int(config.get("stem_out_chans", 3)),
        stem_hidden=branches * branch_chans,
        stem_branches=branches,
        stem_branch_chans=branch_chans,
        stem_norm=config.get("stem_norm"),
        stem_act=config.get("stem_act"),
        head_num_classes=int(config.get("head_num_classes", 1)),
        image_size=int(config.get("image_size", 224)),
    )


def _results_fields(report: Optional[EvaluationReport]) -> Dict[str, Any]:
    """Template fields of the results section (all empty when there are no results)."""
    if report is None:
        return dict(has_results=False, tables=[], eval_split=None, strategy=None, always_fake=None,
                    always_fake_protocol=None, results_source=None, compression=None)
    return dict(
        has_results=True,
        tables=_results_tables(report),
        eval_split=report.results[0].split,
        strategy=report.strategy,
        always_fake=_always_fake_share(report),
        always_fake_protocol=report.results[0].protocol,
        results_source=Path(report.source).name if report.source else None,
        compression=report.compression,
    )
