"""Grad-CAM over the backbone's last stage: where in a face crop the fake score comes from."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..models.dldfd import fake_logit

__all__ = ["grad_cam", "overlay_heatmap"]


def grad_cam(model: nn.Module, pixel_values: torch.Tensor, target: str = "fake") -> torch.Tensor:
    """Class-activation maps for a batch, shape (batch, height, width), values in [0, 1].

    ``model`` is a timm DLDFD module or a ``DLDFDForImageClassification`` (its ``.dldfd``).
    ``target="fake"`` highlights evidence for "fake", ``"real"`` evidence against it.
    The network runs in eval mode (the model's own mode is restored afterwards); no parameter
    gradient or BatchNorm statistic is touched.
    """
    if target not in ("fake", "real"):
        raise ValueError(f"target must be 'fake' or 'real', got {target!r}")
    network = getattr(model, "dldfd", model)
    was_training = network.training
    network.eval()  # explain the deployed model; never touch BatchNorm running statistics
    try:
        with torch.no_grad():
            features = network.forward_features(pixel_values)
            features = features.detach().requires_grad_(True)
            with torch.enable_grad():
                score = fake_logit(network.forward_head(features))
    finally:
        network.train(was_training)
    if target == "real":
        score = -score
    # Gradients flow only from the head back to the last feature map, never into parameters.
    (gradients,) = torch.autograd.grad(score.sum(), features)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * features.detach()).sum(dim=1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return cam / peak


def _colormap(values: np.ndarray) -> np.ndarray:
    """Blue -> cyan -> yellow -> red for values in [0, 1]; returns uint8 RGB."""
    stops = np.array([0.0, 0.35, 0.65, 1.0])
    colours = np.array([[0, 0, 160], [0, 200, 255], [255, 230, 0], [220, 0, 0]], dtype=np.float32)
    rgb = np.stack([np.interp(values, stops, colours[:, c]) for c in range(3)], axis=-1)
    return rgb.astype(np.uint8)


def overlay_heatmap(
    image: Union[Image.Image, np.ndarray], cam: Union[torch.Tensor, np.ndarray], alpha: float = 0.45
) -> Image.Image:
    """Blend a [0, 1] heatmap (resized to the image) over an RGB image."""
    base = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    base = base.convert("RGB")
    cam = cam.detach().cpu().numpy() if isinstance(cam, torch.Tensor) else np.asarray(cam)
    heat = Image.fromarray(_colormap(np.clip(cam, 0, 1))).resize(base.size, Image.BILINEAR)
    return Image.blend(base, heat, alpha)
