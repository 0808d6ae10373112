"""Render ``hub_card/README.md``: the Hub model card of the detector shipped inside ``dldfd_hf``.

    python hub_card/render.py            # (re)write README.md, assets/dev_fakes.png, assets/architecture.png
    python hub_card/render.py --check    # exit 1 when README.md differs from what would be rendered

Inputs, all files: the bundled model folder (``dldfd_hf/models/weights/<model>/``) and
``hub_card/results/``: ``training.json`` (train.py's ``results.json``), ``sources.json``
(``examples/make_faces_corpus.py``), ``run.json`` (machine and wall time of the training run) and
``dev_fakes.json`` (``benchmarks/dev_fakes.py --output``).
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import sys
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import timm
import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin
from safetensors import safe_open

from dldfd_hf import DeepfakeVideoDetectionPipeline
from dldfd_hf.hub.shipped_card import DEV_TARGET_AUC, render_shipped_model_card
from dldfd_hf.media.faces import FaceCropper
from dldfd_hf.models import SHIPPED_MODEL, SHIPPED_MODEL_DIR

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CARD = HERE / "README.md"
PLOT = HERE / "assets" / "dev_fakes.png"
FIGURE = HERE / "assets" / "architecture.png"
FIGURE_KEY = "dldfd-architecture"  # PNG text chunk: the figure's boxes as JSON, to tell a stale figure
# The architecture figure: Pillow's bundled font (same rendering everywhere), colours per part.
HEADER_SIZE, TITLE_SIZE, TEXT_SIZE, LINE_HEIGHT = 24, 20, 18, 26
Colour = tuple[int, int, int]
GREY, BLUE, ORANGE, GREEN, PURPLE = (236, 236, 236), (214, 229, 246), (253, 232, 204), (216, 240, 216), (233, 224, 246)
BLUE_LINE = (52, 101, 164)


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
        "![The demo on a real GRID clip (CC BY 4.0, Cooke et al. 2006): REAL, 0 of 12 frames voted fake]"
        "(assets/demo.png)\n"
    )


def _numel(shape) -> int:
    out = 1
    for n in shape:
        out *= int(n)
    return out


# The sets of the plot: benchmarks/dev_fakes.py keys, legend names and bar colours.
PLOT_SETS = (
    ("ffpp_val", "FF++ val", (52, 101, 164)),
    ("ffpp_test", "FF++ test", (114, 159, 207)),
    ("web_clips", "web clips", (117, 80, 123)),
    ("dfdc_crops", "DFDC crops", (230, 126, 34)),
)


def plot(dev_fakes: dict, path: Path = PLOT) -> None:
    """AUC per model and development set as horizontal bars, the 0.5 (chance) and target lines."""
    models = list(dev_fakes["models"].items())
    sets = [entry for entry in PLOT_SETS if any(entry[0] in result for _, result in models)]
    width, left, bar, gap = 760, 300, 16, 14
    height = 40 + len(models) * (len(sets) * bar + gap) + 30
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
            auc = (result.get(key) or {}).get("auc") or 0.0
            draw.rectangle([left, y, left + auc * scale, y + bar - 2], fill=colour)
            draw.text((left + auc * scale + 4, y + 2), f"{auc:.2f}", fill="black")
            y += bar
        y += gap
    legend = ", ".join(f"{label} (bar {i + 1})" for i, (_, label, _) in enumerate(sets))
    draw.text((8, 8), f"ROC AUC (videos: mean P(fake); crops: per image): {legend}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


Box = tuple[str, ...]  # first line: the box's title
Column = tuple[Colour, list[Box]]  # boxes stacked top to bottom, side by side in the network
Row = tuple[str | None, list[Column], tuple[int, int, str] | None]  # title, columns, framed group
PAD, GAP, ROW_GAP, MARGIN = 10, 40, 56, 24
INK, LINE = (20, 20, 20), (90, 90, 90)


def architecture_facts(model: torch.nn.Module) -> dict[str, Any]:
    """The figure's numbers, read from the built model and one forward pass (nothing typed in)."""
    stem, backbone = model.stem, model.backbone
    x = torch.zeros(1, *model.pretrained_cfg["input_size"])
    stages: list[int] = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: stages.append(out.shape[1]))
             for stage in getattr(backbone, "blocks", [])]
    with torch.no_grad():
        hidden = stem.act(stem.norm(stem.conv(x)))
        image = stem(x)
        features = backbone.forward_features(image)
        pooled = backbone.forward_head(features, pre_logits=True)
        logits = backbone.forward_head(features)
    for hook in hooks:
        hook.remove()
    blocks = [type(b).__name__ for stage in getattr(backbone, "blocks", []) for b in stage]
    head = model.get_classifier()
    count = _param_count
    return dict(
        input=tuple(x.shape[1:]), mean=model.pretrained_cfg["mean"], std=model.pretrained_cfg["std"],
        branches=[tuple(w.shape) for w in stem.branch_weights()], hidden=tuple(hidden.shape[1:]),
        norm=type(stem.norm).__name__, act=type(stem.act).__name__, proj=tuple(stem.proj.weight.shape),
        stem_out=tuple(image.shape[1:]), stem_params=count(stem),
        backbone=model.init_kwargs["backbone"], backbone_class=type(backbone).__name__,
        conv_stem=_conv_text(getattr(backbone, "conv_stem", None)), stages=stages,
        blocks={name: blocks.count(name) for name in dict.fromkeys(blocks)},
        conv_head=_conv_text(getattr(backbone, "conv_head", None)), features=tuple(features.shape[1:]),
        backbone_params=count(backbone) - count(head),
        pool=getattr(getattr(backbone, "global_pool", None), "pool_type", "avg"), pooled=pooled.shape[1],
        logits=logits.shape[1], head=type(head).__name__, head_params=count(head), params=count(model),
        fused=bool(stem.fused and stem.can_fuse()),
    )


def _param_count(module: torch.nn.Module) -> int:
    """Number of parameters of ``module`` (buffers such as BatchNorm statistics not counted)."""
    return sum(p.numel() for p in module.parameters())


def _conv_text(conv: torch.nn.Module | None) -> str | None:
    """``conv 3x3 /2: 3 -> 32`` for a convolution (None for no module)."""
    if not isinstance(conv, torch.nn.Conv2d):
        return None
    (kh, kw), (stride, _) = conv.kernel_size, conv.stride
    return f"conv {kh}x{kw}{f' /{stride}' if stride > 1 else ''}: {conv.in_channels} -> {conv.out_channels}"


def video_facts() -> dict[str, Any]:
    """The video path's defaults, read from the pipeline's and the face cropper's signatures."""
    pre = inspect.signature(DeepfakeVideoDetectionPipeline.preprocess).parameters
    post = inspect.signature(DeepfakeVideoDetectionPipeline.postprocess).parameters
    return dict(
        num_frames=pre["num_frames"].default, min_face_score=pre["min_face_score"].default,
        strategy=post["strategy"].default, threshold=post["threshold"].default,
        scale=inspect.signature(FaceCropper.__init__).parameters["scale"].default,
    )


def _shape(shape: Sequence[int]) -> str:
    """``192 x 224 x 224`` for a (C, H, W) shape."""
    return " x ".join(str(n) for n in shape)


def _value(values: Sequence[float]) -> str:
    """One number for a per-channel value that is the same on every channel, else the tuple."""
    return f"{values[0]:g}" if len(set(values)) == 1 else "(" + ", ".join(f"{v:g}" for v in values) + ")"


def architecture_rows(facts: dict[str, Any], video: dict[str, Any]) -> list[Row]:
    """The boxes of the figure: the network on one face crop (two rows), then the video path."""
    f, v = facts, video
    size = f["input"][-1]
    branches = [(f"branch {i + 1}", f"conv {kh}x{kw}: {cin} -> {cout}") for i, (cout, cin, kh, kw)
                in enumerate(f["branches"])]
    stem: list[Column] = [
        (GREY, [("face crop", f"RGB {_shape(f['input'])}", "pixels x in [0, 1]",
                 f"(x - {_value(f['mean'])}) / {_value(f['std'])}")]),
        (BLUE, branches),
        (BLUE, [("concatenate", f"{_shape(f['hidden'])}")]),
        (BLUE, [(f"{f['norm']}({f['hidden'][0]})", f["act"])]),
        (BLUE, [(f"conv {f['proj'][2]}x{f['proj'][3]}: {f['proj'][1]} -> {f['proj'][0]}", _shape(f["stem_out"]))]),
    ]
    blocks = ", ".join(f"{n} {name}" for name, n in f["blocks"].items())
    backbone = [f["backbone"], f"({f['backbone_class']}, {f['backbone_params']:,} parameters)"]
    if f["stages"]:
        stages = [f"{sum(f['blocks'].values())} blocks in {len(f['stages'])} stages", f"({blocks})",
                  "stage channels " + ", ".join(map(str, f["stages"]))]
    else:
        stages = []
    backbone += [line for line in (f["conv_stem"], *stages, f["conv_head"]) if line]
    backbone.append(f"features {_shape(f['features'])}")
    net: list[Column] = [
        (ORANGE, [tuple(backbone)]),
        (ORANGE, [(f"global {f['pool']} pool", f"{f['pooled']} features")]),
        (GREEN, [(f"{f['head']}: {f['pooled']} -> {f['logits']}", "fake logit z", f"{f['head_params']:,} parameters")]),
        (GREEN, [("P(fake) = sigmoid(z)", f"fake when >= {v['threshold']:g}")]),
    ]
    frames: list[Column] = [
        (PURPLE, [("video", f"{v['num_frames']} frames sampled", "evenly over the clip")]),
        (PURPLE, [("MTCNN: largest face", f"per frame (score >= {v['min_face_score']:g}),",
                   f"crop {v['scale']:g}x its box, square,", f"resized to {size} x {size}")]),
        (GREEN, [("the network above", "P(fake) per face")]),
        (PURPLE, [("frame vote", f"fake if P(fake) >= {v['threshold']:g}", "(no face: no vote)")]),
        (PURPLE, [(f"verdict: {v['strategy']}", "fake if more than half", "of the votes are fake",
                   "(tie: mean P(fake))")]),
    ]
    _, cin, kh, kw = f["branches"][0]
    stem_label = f"augmented layers: {len(branches)} parallel branches, {f['stem_params']:,} parameters"
    if f["fused"]:
        stem_label += f" (run fused as one conv {kh}x{kw}: {cin} -> {f['hidden'][0]})"
    return [(None, stem, (1, len(stem) - 1, stem_label)), (None, net, None),
            (f"A video (pipeline \"deepfake-video-detection\", dldfd detect): {v['num_frames']} frames -> one verdict",
             frames, None)]


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` px (the same glyphs on every machine; ASCII only)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        return ImageFont.load_default()


def _box_size(box: Box, fonts: tuple[ImageFont.ImageFont, ImageFont.ImageFont]) -> tuple[int, int]:
    """Width and height of a box: its title in the first font, the other lines in the second."""
    widths = [int(fonts[i > 0].getlength(line)) for i, line in enumerate(box)]
    return max(widths) + 2 * PAD, len(box) * LINE_HEIGHT + 2 * PAD


def _layout(rows: list[Row], fonts: tuple[ImageFont.ImageFont, ImageFont.ImageFont]) -> tuple[list[Any], int, int]:
    """Rectangles of every box, row by row and column by column, and the figure's width and height."""
    placed, y, width = [], MARGIN + 2 * LINE_HEIGHT, 0
    for title, columns, group in rows:
        y += (LINE_HEIGHT + 8 if title else 0) + (LINE_HEIGHT + PAD if group else 0)
        sizes = [[_box_size(box, fonts) for box in boxes] for _, boxes in columns]
        heights = [sum(h for _, h in col) + PAD * (len(col) - 1) for col in sizes]
        row_height, x, rects = max(heights), MARGIN + (PAD if group and group[0] == 0 else 0), []
        for col, col_height in zip(sizes, heights):
            col_width, top, col_rects = max(w for w, _ in col), y + (row_height - col_height) // 2, []
            for _, h in col:
                col_rects.append((x, top, x + col_width, top + h))
                top += h + PAD
            rects.append(col_rects)
            x += col_width + GAP
        placed.append(rects)
        width, y = max(width, x - GAP + MARGIN + PAD), y + row_height + (PAD if group else 0) + ROW_GAP
    return placed, width, y - ROW_GAP + MARGIN


def _arrow(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]]) -> None:
    """A polyline with an arrow head at its last point."""
    draw.line(points, fill=LINE, width=2, joint="curve")
    (x0, y0), (x1, y1) = points[-2], points[-1]
    length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-6)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    draw.polygon([(x1, y1), (x1 - 10 * ux - 5 * uy, y1 - 10 * uy + 5 * ux),
                  (x1 - 10 * ux + 5 * uy, y1 - 10 * uy - 5 * ux)], fill=LINE)


def _draw_box(draw: ImageDraw.ImageDraw, rect: tuple[int, int, int, int], box: Box, colour: Colour,
              fonts: tuple[ImageFont.ImageFont, ImageFont.ImageFont]) -> None:
    """A rounded box with its lines centred, the title first."""
    draw.rounded_rectangle(rect, radius=8, fill=colour, outline=LINE, width=2)
    for i, line in enumerate(box):
        x = (rect[0] + rect[2] - fonts[i > 0].getlength(line)) / 2
        draw.text((x, rect[1] + PAD + i * LINE_HEIGHT), line, fill=INK, font=fonts[i > 0])


def _draw_row(draw: ImageDraw.ImageDraw, row: Row, rects: list[list[tuple[int, int, int, int]]],
              fonts: tuple[ImageFont.ImageFont, ImageFont.ImageFont]) -> None:
    """One row: its title, the frame around its group, the boxes, and the arrows between columns."""
    title, columns, group = row
    top = min(r[1] for col in rects for r in col)
    if group:
        first, last, label = group
        frame_top = min(r[1] for col in rects[first:last + 1] for r in col) - LINE_HEIGHT - PAD
        bottom = max(r[3] for col in rects[first:last + 1] for r in col) + PAD
        draw.rounded_rectangle((rects[first][0][0] - PAD, frame_top, rects[last][0][2] + PAD, bottom),
                               radius=10, outline=BLUE_LINE, width=2)
        draw.text((rects[first][0][0], frame_top + 4), label, fill=BLUE_LINE, font=fonts[1])
        top = min(top, frame_top)
    if title:
        draw.text((MARGIN, top - LINE_HEIGHT - 8), title, fill=INK, font=fonts[0])
    for (colour, boxes), col in zip(columns, rects):
        for box, rect in zip(boxes, col):
            _draw_box(draw, rect, box, colour, fonts)
    for left, right in itertools.pairwise(rects):
        if len(left) > 1 and len(right) > 1:
            raise ValueError("architecture figure: connect one box to many, never many to many")
        for i, a in enumerate(left):  # fan out / fan in, the ends spread apart on the single box
            for j, b in enumerate(right):
                start = (a[1] + a[3]) / 2 + (j - (len(right) - 1) / 2) * 12
                end = (b[1] + b[3]) / 2 + (i - (len(left) - 1) / 2) * 12
                _arrow(draw, [(a[2], start), (b[0] - 1, end)])


def draw_architecture(model: torch.nn.Module, name: str = SHIPPED_MODEL) -> Image.Image:
    """Block diagram of ``model`` (a DLDFD) and of the video path, every number read from the code.

    ``image.info[FIGURE_KEY]`` holds the boxes' text as JSON (:func:`write_architecture` stores it).
    """
    rows = architecture_rows(architecture_facts(model), video_facts())
    fonts = (_font(TITLE_SIZE), _font(TEXT_SIZE))
    placed, width, height = _layout(rows, fonts)
    image = Image.new("RGB", (width, height), "white")
    image.info[FIGURE_KEY] = json.dumps(rows)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), f"{name}: DLDFD, one face crop -> P(fake)", fill=INK, font=_font(HEADER_SIZE))
    for row, rects in zip(rows, placed):
        _draw_row(draw, row, rects, fonts)
    # The stem's output feeds the backbone: from the end of the first row to the start of the second.
    a, b = placed[0][-1][0], placed[1][0][0]
    turn = (max(r[3] for col in placed[0] for r in col) + PAD + b[1]) / 2
    _arrow(draw, [((a[0] + a[2]) / 2, a[3]), ((a[0] + a[2]) / 2, turn), ((b[0] + b[2]) / 2, turn),
                  ((b[0] + b[2]) / 2, b[1] - 1)])
    return image


def write_architecture(path: Path = FIGURE) -> None:
    """Draw the shipped model (its bundled weights, offline) to ``path``, the boxes' text in the PNG."""
    image = draw_architecture(shipped_model())
    info = PngImagePlugin.PngInfo()
    info.add_text(FIGURE_KEY, image.info[FIGURE_KEY])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, pnginfo=info)


def shipped_model() -> torch.nn.Module:
    """The detector bundled in the package (timm, offline), in eval mode."""
    return timm.create_model(SHIPPED_MODEL, pretrained=True).eval()


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
    write_architecture()
    print(f"wrote {CARD}, {PLOT} and {FIGURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
