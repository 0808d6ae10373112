"""Render ``hub_card/README.md``: the Hub model card of the detector shipped inside ``dldfd_hf``.

    python hub_card/render.py            # (re)write README.md and assets/dev_fakes.png
    python hub_card/render.py --check    # exit 1 when README.md differs from what would be rendered

Inputs, all files: the bundled model folder (``dldfd_hf/models/weights/<model>/``) and
``hub_card/results/``: ``training.json`` (train.py's ``results.json``), ``sources.json``
(``examples/make_faces_corpus.py``), ``run.json`` (machine and wall time of the training run) and
``dev_fakes.json`` (``benchmarks/dev_fakes.py --output``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw
from safetensors import safe_open

from dldfd_hf.models import SHIPPED_MODEL_DIR
from dldfd_hf.shipped_card import DEV_TARGET_AUC, render_shipped_model_card

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CARD = HERE / "README.md"
PLOT = HERE / "assets" / "dev_fakes.png"


def render() -> str:
    weights = SHIPPED_MODEL_DIR / "model.safetensors"
    with safe_open(str(weights), framework="pt") as tensors:
        params = sum(_numel(tensors.get_slice(k).get_shape()) for k in tensors.keys()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    card = render_shipped_model_card(
        SHIPPED_MODEL_DIR / "config.json",
        training=RESULTS / "training.json",
        sources=RESULTS / "sources.json",
        dev_fakes=RESULTS / "dev_fakes.json",
        run=RESULTS / "run.json",
        weights_bytes=weights.stat().st_size,
        params=params,
    )
    text = str(card)
    return text.rstrip("\n") + (
        "\n\n![AUC on real manipulations](assets/dev_fakes.png)\n\n"
        "![The demo on a real GRID clip (CC BY 4.0, Cooke et al. 2006): REAL, 2 of 12 frames voted fake]"
        "(assets/demo.png)\n"
    )


def _numel(shape) -> int:
    out = 1
    for n in shape:
        out *= int(n)
    return out


def plot(dev_fakes: dict, path: Path = PLOT) -> None:
    """Frame AUC per model and development set as horizontal bars, the 0.5 (chance) and target lines."""
    models = list(dev_fakes["models"].items())
    sets = (("yonsei_photoshop", "Yonsei composites", (52, 101, 164)), ("dfdc_crops", "DFDC crops", (230, 126, 34)))
    width, left, bar, gap = 760, 300, 16, 14
    height = 40 + len(models) * (2 * bar + gap) + 30
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    scale = width - left - 30
    for value, colour in ((0.5, (150, 150, 150)), (DEV_TARGET_AUC, (40, 160, 40))):
        x = left + value * scale
        draw.line([(x, 30), (x, height - 25)], fill=colour, width=1)
        draw.text((x - 10, height - 20), f"{value:.1f}", fill=colour)
    y = 36
    for spec, result in models:
        draw.text((8, y + bar // 2), spec[:44], fill="black")
        for key, label, colour in sets:
            auc = result[key]["auc"] or 0.0
            draw.rectangle([left, y, left + auc * scale, y + bar - 2], fill=colour)
            draw.text((left + auc * scale + 4, y + 2), f"{auc:.2f}", fill="black")
            y += bar
        y += gap
    draw.text((left, 8), "frame ROC AUC:  blue = Yonsei composites, orange = DFDC crops", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare README.md with a fresh rendering")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not CARD.is_file() or CARD.read_text(encoding="utf-8") != text:
            print(f"{CARD} is stale: run python hub_card/render.py", file=sys.stderr)
            return 1
        return 0
    CARD.write_text(text, encoding="utf-8")
    plot(json.loads((RESULTS / "dev_fakes.json").read_text(encoding="utf-8")))
    print(f"wrote {CARD} and {PLOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
