"""Images as RGB pixels: reading a user's file (upright, checked) and converting arrays and PIL modes."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .._io import PathLike
from .files import MediaError, file_problem

__all__ = ["ImageLike", "ImageReadError", "load_image", "to_rgb_image", "to_rgb_array"]

ImageLike = Union[np.ndarray, Image.Image]


class ImageReadError(MediaError):
    """The file is missing, empty, or not an image PIL can decode."""


def load_image(path: PathLike) -> Image.Image:
    """Read an image file as RGB, upright (EXIF orientation applied), fully decoded.

    An image over PIL's decompression-bomb limit (``2 * Image.MAX_IMAGE_PIXELS`` pixels) is refused
    with its size, before any pixel is decoded.
    """
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise ImageReadError(path, problem)
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here and not later
            image = ImageOps.exif_transpose(image)
            return to_rgb_image(image)
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image (PIL cannot identify the format)") from None
    except Image.DecompressionBombError:
        raise ImageReadError(path, _too_large(path)) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(path, f"unreadable or truncated image ({err})") from None


def _too_large(path: Path) -> str:
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    size = _header_size(path)
    dimensions = f"{size[0]} x {size[1]}" if size else "over the limit"
    return f"image too large ({dimensions}, limit {limit} pixels)"


def _header_size(path: Path) -> Optional[tuple]:
    """The image's size read from its header alone, without PIL's decompression-bomb check (which
    :func:`PIL.Image.open` applies): only called to describe an image that check refused."""
    Image.init()
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(16)
            for name in Image.ID:
                factory, accept = Image.OPEN[name]
                if accept is not None and not accept(prefix):
                    continue
                handle.seek(0)
                try:
                    return factory(handle, str(path)).size
                except (SyntaxError, IndexError, TypeError, ValueError, struct.error, OSError):
                    continue
    except OSError:
        return None
    return None


def to_rgb_image(image: ImageLike) -> Image.Image:
    """Any PIL mode or uint8 array (HxW, HxWx1, HxWx3, HxWx4) as an RGB PIL image.

    Transparent pixels are composited onto white (their stored colour is arbitrary), 16-bit and
    float greyscale are scaled to 8 bits.
    """
    if isinstance(image, np.ndarray):
        return Image.fromarray(to_rgb_array(image))
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = values.max() if values.size else 0.0
        if peak > 255:
            values = values * (255.0 / (65535.0 if peak <= 65535 else peak))
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """An image as a contiguous HxWx3 uint8 RGB array (see :func:`to_rgb_image` for the modes)."""
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb_image(image))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8 (0-255), got dtype {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image arrays must be HxW, HxWx1, HxWx3 or HxWx4; got shape {image.shape}")
    if image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if image.shape[2] == 4:
        return np.asarray(to_rgb_image(Image.fromarray(image)))
    return np.ascontiguousarray(image)
