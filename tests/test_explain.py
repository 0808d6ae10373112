"""Grad-CAM: shapes, range, and that it points where the score comes from."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn

import dldfd_hf  # noqa: F401
from dldfd_hf.inference.explain import grad_cam, overlay_heatmap


class ChannelZeroDetector(nn.Module):
    """Globally pooled head that reads only feature channel 0 (a known answer for CAM)."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, 0].mean(dim=(1, 2))[:, None]


def test_cam_highlights_the_region_that_drives_the_score():
    x = torch.zeros(1, 2, 8, 8)
    x[:, 0, :, :4] = 1.0  # the channel the head reads is active on the left ...
    x[:, 1, :, 4:] = 3.0  # ... a stronger but irrelevant channel on the right
    cam = grad_cam(ChannelZeroDetector(), x)[0]
    assert cam.shape == (8, 8)
    assert cam[:, :3].mean() > 0.5 and cam[:, 5:].max() < 0.2
    assert cam.max().item() == pytest.approx(1.0)
    # Evidence for "real" is the opposite sign: nothing in the left half supports it.
    assert grad_cam(ChannelZeroDetector(), x, target="real")[0].max() < 1e-6


@pytest.mark.parametrize("training", [False, True])
def test_cam_on_dldfd_keeps_model_state(training):
    model = timm.create_model("dldfd_tiny").train(training)
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    x = torch.randn(2, 3, 64, 64)
    cam = grad_cam(model, x)
    assert cam.shape == (2, 64, 64)
    assert cam.min() >= 0 and cam.max() <= 1
    assert model.training is training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(b, buffers[name]) for name, b in model.named_buffers())  # BN statistics untouched
    model.eval()
    wrapped = dldfd_hf.DLDFDForImageClassification.from_timm(model).eval()
    assert torch.allclose(grad_cam(wrapped, x), cam, atol=1e-6)
    with pytest.raises(ValueError, match="target must be"):
        grad_cam(model, x, target="both")


def test_overlay_is_an_rgb_image_of_the_crop_size():
    crop = Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8))
    cam = torch.zeros(16, 16)
    cam[:8] = 1.0
    out = overlay_heatmap(crop, cam)
    assert out.size == (64, 64) and out.mode == "RGB"
    pixels = np.asarray(out).astype(int)
    assert pixels[5, 32, 0] > pixels[60, 32, 0]  # hot (red) on top, cold (blue) below
    assert pixels[60, 32, 2] > pixels[5, 32, 2]
