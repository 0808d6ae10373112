"""Finalising a corpus build: the units of one or more shard folders become the ``DatasetDict``.

Units are read in a fixed order (split, method, video id, frame index), so the corpus does not
depend on the order the videos were processed in; ``dataset_dict.json`` is written last: its
presence marks a complete corpus. ``build_report.json`` holds the counts (the paper's Table 1).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence

import datasets
import pyarrow.parquet as pq
from datasets import Dataset

from .._io import PathLike, atomic_write_json, temporary_name
from .ffpp import METHOD_NAMES, ORIGINAL, SPLITS, counts_by_split
from .folders import check_output_folder
from .report import REPORT_FILE
from .workdir import (
    FAILED_FILE,
    WORK_DIR,
    BuildConfig,
    BuildError,
    WorkDir,
    corpus_features,
)


def merge_shards(output: PathLike, shard_dirs: Sequence[PathLike] = (), progress: bool = True) -> dict[str, Any]:
    """Join shard folders (built with ``shard_index``/``num_shards``) into the corpus at ``output``.

    ``shard_dirs`` defaults to ``[output]`` (every machine wrote into one shared folder). Checks
    that every shard is present once, was built with the same settings, and is complete.
    """
    dirs = [Path(d) for d in shard_dirs] or [Path(output)]
    return finalize_corpus(output, dirs, progress=progress)


def finalize_corpus(output: PathLike, shard_dirs: Sequence[PathLike], progress: bool = True) -> dict[str, Any]:
    """Write ``output`` as a ``DatasetDict`` from the units of ``shard_dirs``; returns the report."""
    output = check_output_folder(output, error=BuildError)
    works = [WorkDir(d) for d in shard_dirs]
    config, manifests = _check_shards(works)
    out_work = WorkDir(output)
    if out_work.path.resolve() not in {w.path.resolve() for w in works}:
        out_work.claim(config)
    out_work.remove_temporaries(this_host_only=False)
    cache = out_work.path / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # left by a killed finalisation

    units: dict[str, list[Path]] = {s: [] for s in SPLITS}
    failed, seen = [], set()
    method_order = {m: i for i, m in enumerate(METHOD_NAMES)}
    entries = []
    for work, manifest in manifests:
        for split, method, video_id, path in manifest["videos"]:
            if (split, method, video_id) in seen:
                raise BuildError(f"video {method}/{video_id} appears in two shards")
            seen.add((split, method, video_id))
            entries.append((split, method, video_id, work))
    entries.sort(key=lambda e: (SPLITS.index(e[0]), method_order[e[1]], e[2]))
    video_stats = []
    for split, method, video_id, work in entries:
        unit = work.unit_path(split, method, video_id)
        if unit.is_file():
            units[split].append(unit)
            video_stats.append((split, method, video_id, _unit_stats(unit)))
        else:
            failed.append(json.loads(work.failure_path(split, method, video_id).read_text()))

    features = corpus_features()
    bars_were_on = not datasets.are_progress_bars_disabled()
    if not progress:
        datasets.disable_progress_bars()
    staging = temporary_name(out_work.path / "final")
    trash = temporary_name(out_work.path / "trash")
    try:
        for split in SPLITS:
            if units[split]:
                ds = Dataset.from_parquet([str(p) for p in units[split]], split=split, features=features, cache_dir=str(cache))
                ds.save_to_disk(str(staging / split))
            else:
                # datasets writes no shard at all for an empty split unless told to, and cannot load that back.
                ds = Dataset.from_dict({name: [] for name in features}, features=features, split=split)
                ds.save_to_disk(str(staging / split), num_shards=1)
            del ds
        report = _report(config, manifests, video_stats, failed)
        (output / "dataset_dict.json").unlink(missing_ok=True)  # from here on: not a complete corpus
        trash.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            if (output / split).exists():
                os.replace(output / split, trash / split)
            os.replace(staging / split, output / split)
        atomic_write_json(output / REPORT_FILE, report)
        atomic_write_json(output / FAILED_FILE, failed)
        # Last: the marker that load_from_disk reads.
        atomic_write_json(output / "dataset_dict.json", {"splits": list(SPLITS)})
    finally:
        for path in (staging, trash, cache):
            shutil.rmtree(path, ignore_errors=True)
        if bars_were_on:
            datasets.enable_progress_bars()
    return report


def _check_shards(works: Sequence[WorkDir]) -> tuple[BuildConfig, list[tuple[WorkDir, dict[str, Any]]]]:
    config: Optional[BuildConfig] = None
    manifests: list[tuple[WorkDir, dict[str, Any]]] = []
    for work in works:
        found = work.read_config()
        if found is None:
            raise BuildError(f"{work.output} is not a corpus build folder (no {WORK_DIR}/config.json)")
        if config is not None and found != config:
            raise BuildError(f"{work.output} was built with other settings than {works[0].output}: {found} vs {config}")
        config = found
        for manifest in work.manifests():
            manifests.append((work, manifest))
    assert config is not None
    counts = {m["num_shards"] for _, m in manifests}
    if len(counts) != 1:
        raise BuildError(f"the shard folders were built with different --num-shards: {sorted(counts)}")
    num_shards = counts.pop()
    indices = Counter(m["shard_index"] for _, m in manifests)
    twice = sorted(i for i, n in indices.items() if n > 1)
    if twice:
        raise BuildError(f"shard(s) {twice} of {num_shards} found in more than one folder")
    absent = sorted(set(range(num_shards)) - set(indices))
    if absent:
        raise BuildError(
            f"shard(s) {absent} of {num_shards} missing: pass every shard folder "
            f"(built with --shard-index i --num-shards {num_shards})"
        )
    for work, manifest in manifests:
        todo = [
            f"{method}/{video_id}"
            for split, method, video_id, _ in manifest["videos"]
            if not work.unit_path(split, method, video_id).is_file()
            and not work.failure_path(split, method, video_id).is_file()
        ]
        if todo:
            raise BuildError(
                f"shard {manifest['shard_index']} of {num_shards} in {work.output} is incomplete: "
                f"{len(todo)} of {len(manifest['videos'])} videos not built yet (e.g. {', '.join(todo[:3])}); "
                "rerun its build-ffpp command to finish it"
            )
    return config, sorted(manifests, key=lambda wm: wm[1]["shard_index"])


def _unit_stats(unit: Path) -> dict[str, Any]:
    meta = pq.read_metadata(unit)
    return json.loads(meta.metadata[b"dldfd_video"])


def _report(
    config: BuildConfig,
    manifests: list[tuple[WorkDir, dict[str, Any]]],
    video_stats: list[tuple[str, str, str, dict[str, Any]]],
    failed: list[dict[str, Any]],
) -> dict[str, Any]:
    methods = list(dict.fromkeys(m for _, man in manifests for m in man["methods"]))
    videos = counts_by_split(((s, m) for s, m, _, st in video_stats if st["faces"] > 0), methods)
    images: dict[str, dict[str, int]] = {s: {m: 0 for m in (ORIGINAL, *methods)} for s in SPLITS}
    for split, method, _, stats in video_stats:
        images[split][method] += stats["faces"]
    return {
        "config": config.to_dict(),
        "methods": methods,
        "num_shards": manifests[0][1]["num_shards"] if manifests else 1,
        "videos": videos,
        "images": images,
        "class_images": {
            s: {"real": images[s][ORIGINAL], "fake": sum(n for m, n in images[s].items() if m != ORIGINAL)} for s in SPLITS
        },
        "frames_decoded": sum(st["frames"] for *_, st in video_stats),
        "frames_without_face": sum(st["frames"] - st["faces"] for *_, st in video_stats),
        "videos_without_face": [f"{m}/{v}" for _, m, v, st in video_stats if st["faces"] == 0],
        "failed": [f"{f['method']}/{f['video_id']}" for f in failed],
    }


__all__ = ["finalize_corpus", "merge_shards"]
