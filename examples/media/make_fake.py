"""Regenerate ``made_by_dldfd_faceswap.jpg``: a face swap made by dldfd-hf's own blending code.

The face of ``london_face_010.jpg`` is put onto ``london_face_009.jpg`` (both Face Research Lab
London, CC BY 4.0; see ATTRIBUTION.md) the way ``dldfd synth-ffpp`` fills its ``Deepfakes`` folder:
MTCNN's five landmarks, a similarity-aligned warp, a colour-matched, soft-edged face mask
(:data:`dldfd_hf.data.synth.RECIPES`, :func:`dldfd_hf.data.blending.face_swap`).

    python examples/media/make_fake.py            # rewrites examples/media/made_by_dldfd_faceswap.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from dldfd_hf.data.blending import face_swap
from dldfd_hf.data.synth import RECIPES
from dldfd_hf.media.faces import FaceCropper
from dldfd_hf.media.image import load_image

HERE = Path(__file__).resolve().parent
TARGET = HERE / "london_face_009.jpg"  # keeps her head, hair and background
SOURCE = HERE / "london_face_010.jpg"  # gives her face
OUTPUT = HERE / "made_by_dldfd_faceswap.jpg"


def landmarks(detector: FaceCropper, image: np.ndarray, name: str) -> np.ndarray:
    """The five MTCNN landmarks of the largest face in ``image``."""
    (faces,) = detector.detect([image])
    if not faces:
        raise SystemExit(f"make_fake.py: no face found in {name}")
    return np.asarray(faces[0].landmarks, dtype=np.float64)


def make_fake(target: Path = TARGET, source: Path = SOURCE) -> Image.Image:
    """``source``'s face swapped onto ``target`` with the ``Deepfakes`` recipe of synth-ffpp."""
    detector = FaceCropper(crop_size=None)
    target_image, source_image = np.asarray(load_image(target)), np.asarray(load_image(source))
    recipe = RECIPES["Deepfakes"]
    swapped = face_swap(
        target_image, landmarks(detector, target_image, target.name),
        source_image, landmarks(detector, source_image, source.name),
        region=recipe.region, feather=recipe.feather, colour_match=recipe.colour_match,
    )
    return Image.fromarray(swapped.image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write the fake ({OUTPUT.name})")
    args = parser.parse_args()
    make_fake().save(args.output, quality=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
