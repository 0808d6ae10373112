"""Write the training-data record of a run over several corpora (the model card's data table).

Joins what the corpus builds recorded: a ``dldfd build-faces`` corpus made by
``examples/make_faces_corpus.py`` (its ``sources.json``: files, people, origin and licence per
source) and a ``dldfd build-ffpp`` corpus (its ``build_report.json``: videos per split and method).

    python examples/training_sources.py --faces runs/faces_corpus --ffpp runs/ffpp_c23_corpus \
        --output hub_card/results/sources.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FFPP_ORIGIN = "FaceForensics++ (Rossler et al. 2019), a c23 subset in the official layout"
FFPP_LICENSE = "FaceForensics++ Terms of Use: research only, no redistribution"


def ffpp_entry(corpus: Path, reals_only: bool = False) -> dict:
    """The FF++ corpus as one source row: its training videos (originals = people) and crops
    (``reals_only``: a run that used its originals only, ``pseudo_fakes: sbi``)."""
    report_path = corpus / "build_report.json"
    if not report_path.is_file():
        raise SystemExit(f"error: {report_path} not found (expected a corpus written by `dldfd build-ffpp`)")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    videos = report["videos"]["train"]
    images = report["images"]["train"]
    if reals_only:
        videos, images = {"original": videos.get("original", 0)}, {"original": images.get("original", 0)}
    methods = ", ".join(f"{m} {n}" for m, n in videos.items() if m != "original") or "not used"
    return {
        "source": f"ffpp_{report['config']['compression']}",
        "kind": f"video (originals; fakes: {methods})",
        "files": sum(videos.values()),
        "people": videos.get("original", 0),
        "crops": sum(images.values()),
        "origin": FFPP_ORIGIN,
        "license": FFPP_LICENSE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, required=True, help="the build-faces corpus (with sources.json)")
    parser.add_argument("--ffpp", type=Path, required=True, help="the build-ffpp corpus (with build_report.json)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--ffpp-reals-only", action="store_true", help="the run used FF++'s originals only (pseudo_fakes: sbi)")
    args = parser.parse_args(argv)
    faces_path = args.faces / "sources.json"
    if not faces_path.is_file():
        raise SystemExit(f"error: {faces_path} not found (write it with examples/make_faces_corpus.py)")
    record = json.loads(faces_path.read_text(encoding="utf-8"))
    ffpp = ffpp_entry(args.ffpp, reals_only=args.ffpp_reals_only)
    record["sources"] = [ffpp] + record["sources"]
    record["people"] += ffpp["people"]
    args.output.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"{len(record['sources'])} sources, {record['people']} people -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
