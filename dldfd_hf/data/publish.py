"""Dataset card and Parquet export of a built FF++ corpus.

The (private-only) Hub upload of this export is :func:`dldfd_hf.hub.push.push_corpus`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from datasets import load_from_disk
from huggingface_hub import DatasetCard, DatasetCardData

from .._io import PathLike, atomic_folder
from ..templates import template_text
from .ffpp import SPLITS
from .report import read_report, report_table

CARD_TEMPLATE = "ffpp_dataset_card.md"
_MAX_SHARD_BYTES = 500 * 2**20


def render_dataset_card(corpus_dir: PathLike, pretty_name: str = "FaceForensics++ face crops (DLDFD)") -> str:
    """The dataset card (README.md) of a built corpus: terms of use, statistics, fields, settings."""
    report = read_report(corpus_dir)
    config = report["config"]
    images = sum(sum(c.values()) for c in report["class_images"].values())
    train = report["class_images"]["train"]
    card_data = DatasetCardData(
        pretty_name=pretty_name,
        license="other",
        license_name="faceforensics-terms-of-use",
        license_link="http://kaldir.vc.in.tum.de/faceforensics_tos.pdf",
        task_categories=["image-classification"],
        tags=["deepfake-detection", "faceforensics", "face-forgery", "dldfd"],
        size_categories=[_size_category(images)],
        configs=[
            {
                "config_name": "default",
                # an empty split has no file (a Parquet config cannot point at nothing)
                "data_files": [
                    {"split": s, "path": f"data/{s}-*.parquet"} for s in SPLITS if sum(report["class_images"][s].values())
                ],
            }
        ],
    )
    frames = config["frames_per_video"]
    card = DatasetCard.from_template(
        card_data,
        template_str=template_text(CARD_TEMPLATE),
        pretty_name=pretty_name,
        config=config,
        config_json=json.dumps(config, indent=2),
        frames_label="every frame" if frames is None else f"{frames} evenly spaced frames",
        report=report,
        table=report_table(report),
        class_images=report["class_images"],
        fake_ratio=train["fake"] / train["real"] if train["real"] else float("nan"),
        pos_weight=train["real"] / train["fake"] if train["fake"] else float("nan"),
    )
    return str(card)


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def export_parquet(corpus_dir: PathLike, dest: PathLike, max_shard_bytes: int = _MAX_SHARD_BYTES) -> Path:
    """Write the corpus as Hub-layout Parquet: ``dest/data/<split>-NNNNN-of-NNNNN.parquet`` + README.md.

    ``datasets.load_dataset(dest)`` opens it as train/validation/test (empty splits are left out).
    ``dest`` must not exist yet; it appears complete or not at all.
    """
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists: choose a new folder for the Parquet export")
    corpus = load_from_disk(str(corpus_dir))
    card = render_dataset_card(corpus_dir)
    with atomic_folder(dest) as staging:
        (staging / "data").mkdir()
        for split in SPLITS:
            ds = corpus[split]
            if ds.num_rows == 0:
                continue  # see render_dataset_card
            num_shards = max(1, math.ceil(ds.data.nbytes / max_shard_bytes))
            for i in range(num_shards):
                name = f"{split}-{i:05d}-of-{num_shards:05d}.parquet"
                ds.shard(num_shards, i, contiguous=True).to_parquet(str(staging / "data" / name))
        (staging / "README.md").write_text(card)
    return dest
