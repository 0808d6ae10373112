"""Build the training corpus of the shipped detector from the real faces of ``../shared/data``.

Photos (``faces.csv``) and talking-face clips (``videos.csv``) are linked into one folder per person
(the CSVs' ``identity`` column), so ``dldfd build-faces`` keeps every person inside one split. Left
out: the Yonsei reals (the development reals of ``benchmarks/dev_fakes.py``) and everything under
``dev_fakes/`` (real manipulations: for choosing and reporting models, never for training).

    python examples/make_faces_corpus.py --data ../shared/data --output runs/faces_corpus
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
from pathlib import Path

from dldfd_hf.data.faces_corpus import build_faces, split_summary

# Kept out of training: the reals that dev_fakes' Photoshop composites are judged against.
HELD_OUT_SOURCES = ("yonsei_real_and_fake_face_160",)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "unnamed"


def training_rows(data: Path) -> list[dict]:
    """The CSV rows (``path``, ``identity``, ``source``, ``origin``, ``license``, ...) that may be trained on."""
    rows = []
    for table in ("faces.csv", "videos.csv"):
        path = data / table
        if not path.is_file():
            raise SystemExit(f"error: {path} not found (expected the shared data folder with faces.csv and videos.csv)")
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["source"] in HELD_OUT_SOURCES or row["path"].startswith("dev_fakes/"):
                    continue
                rows.append(dict(row, kind="video" if table == "videos.csv" else "photo"))
    missing = [row["path"] for row in rows if not (data / row["path"]).is_file()]
    if missing:
        raise SystemExit(f"error: {len(missing)} file(s) listed in the CSVs are missing, e.g. {data / missing[0]}")
    return rows


def source_summary(rows: list[dict]) -> list[dict]:
    """Per source: files, people, kind, origin and licence (for the model card's training-data table)."""
    out: dict[str, dict] = {}
    for row in rows:
        entry = out.setdefault(row["source"], {
            "source": row["source"], "kind": row["kind"], "files": 0, "people": set(),
            "origin": row["origin"], "license": row["license"],
        })
        entry["files"] += 1
        entry["people"].add(row["identity"])
    return [dict(e, people=len(e["people"])) for e in sorted(out.values(), key=lambda e: -e["files"])]


def stage(files: list[tuple[str, Path]], folder: Path) -> None:
    """One sub-folder per person, holding links to that person's files."""
    for identity, file in files:
        group = folder / _slug(identity)
        group.mkdir(parents=True, exist_ok=True)
        (group / _slug(file.name)).symlink_to(file.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data folder (faces.csv, videos.csv)")
    parser.add_argument("--output", required=True, help="corpus folder to write (an unfinished one is resumed)")
    parser.add_argument("--frames-per-video", type=int, default=24)
    parser.add_argument("--crop-size", type=int, default=320)
    parser.add_argument("--crop-scale", type=float, default=1.8, help="wide crops: training jitters the 1.3x crop inside them")
    parser.add_argument("--num-proc", type=int, default=1)
    args = parser.parse_args(argv)

    data = Path(args.data)
    rows = training_rows(data)
    files = [(row["identity"], data / row["path"]) for row in rows]
    with tempfile.TemporaryDirectory(prefix="dldfd-faces-") as staging:
        stage(files, Path(staging))
        index, summary = build_faces(
            staging, args.output, frames_per_video=args.frames_per_video, crop_size=args.crop_size,
            crop_scale=args.crop_scale, num_proc=args.num_proc,
        )
    sources = {"held_out_sources": list(HELD_OUT_SOURCES), "people": len({row["identity"] for row in rows}),
               "sources": source_summary(rows)}
    (Path(args.output) / "sources.json").write_text(json.dumps(sources, indent=2) + "\n", encoding="utf-8")
    print(f"{len(files)} files of {len({i for i, _ in files})} people; {summary.frames} frames, {len(summary.failed)} failed")
    print(split_summary(index, summary.report))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
