"""Several corpora in one run (``sources`` in the training config).

FaceForensics++ frames with their true labels are few (45 training videos here) and one kind of
footage; self-blended pseudo-fakes of a ``dldfd build-faces`` corpus bring thousands of other
people. Training on both at once needs three things this module provides:

- :func:`merge_splits`: the sources' splits as one :class:`datasets.Dataset` with a ``source``
  column (the name the config gives each corpus), the ``method`` labels of all of them, and video
  ids prefixed with the source, so that videos of different corpora never merge in a vote;
- :class:`SourceMixSampler`: each training epoch draws every source's share (``source_weights``) of
  the rows, so neither source swamps the other whatever their sizes;
- :meth:`SourceMixSampler.drawn_per_label`: the real / fake rows an epoch draws, for the BCE weight.

Validation and test metrics are reported per source as well (``per_source`` in
:func:`dldfd_hf.training.evaluation.split_metrics`).
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from datasets import ClassLabel, Value, concatenate_datasets
from torch.utils.data import Sampler

__all__ = ["SOURCE_COLUMN", "SourceMixSampler", "merge_splits", "source_quotas"]

SOURCE_COLUMN = "source"


def merge_splits(splits: Mapping[str, object]) -> object:
    """One split out of ``{source name: datasets.Dataset}`` (in that order); see the module doc.

    Only the small columns are rewritten (as in-memory columns beside the memory-mapped ones): the
    images stay where they are, so merging corpora of any size costs no copy of them.
    """
    names: List[str] = []
    for split in splits.values():
        names += [n for n in split.features["method"].names if n not in names]
    merged = []
    for source, split in splits.items():
        old_names = split.features["method"].names
        remap = np.asarray([names.index(n) for n in old_names], dtype=np.int64)
        methods = remap[np.asarray(split.select_columns(["method"])["method"], dtype=np.int64)]
        video_ids = [f"{source}/{v}" for v in split.select_columns(["video_id"])["video_id"]]
        columns = list(split.column_names)
        split = split.remove_columns(["method", "video_id"])
        split = split.add_column("method", methods.tolist(), feature=ClassLabel(names=names))
        split = split.add_column("video_id", video_ids, feature=Value("string"))
        split = split.add_column(SOURCE_COLUMN, [source] * len(split), feature=Value("string"))
        merged.append(split.select_columns(columns + [SOURCE_COLUMN]))
    return concatenate_datasets(merged)


def source_quotas(sizes: Mapping[str, int], weights: Mapping[str, float], epoch_rows: int) -> Dict[str, int]:
    """Rows drawn per source in one epoch: ``epoch_rows`` shared in proportion to ``weights``."""
    total = float(sum(weights[name] for name in sizes))
    quotas = {name: int(round(epoch_rows * weights[name] / total)) for name in sizes}
    for name, size in sizes.items():
        if size == 0 and quotas[name]:
            raise ValueError(f"source {name!r} has no training rows but a weight of {weights[name]}")
    return quotas


class SourceMixSampler(Sampler):
    """One training epoch that draws each source's quota of rows, a pure function of ``(seed, epoch)``.

    A source's quota is shared by its real and fake rows in proportion. Within each, rows come
    without repetition (a fresh permutation each time they are exhausted: a quota above their
    number repeats rows, a smaller one leaves some out this epoch and takes them next); everything
    is then shuffled together. Yields ``(row, seed)`` as
    :class:`~dldfd_hf.training.data.EpochSampler` does, so :class:`PseudoFakePairs` can wrap it.
    """

    def __init__(self, sources: Sequence[str], weights: Mapping[str, float], seed: int,
                 epoch_rows: int | None = None, labels: Sequence[int] | None = None) -> None:
        column = np.asarray(sources, dtype=object)
        if column.size == 0:
            raise ValueError("SourceMixSampler: the training split is empty")
        self.names = list(dict.fromkeys(column.tolist()))
        missing = [name for name in self.names if name not in weights]
        if missing:
            raise ValueError(f"source_weights has no weight for source(s) {missing}")
        quotas = source_quotas({n: int((column == n).sum()) for n in self.names}, weights, epoch_rows or column.size)
        # Each source's quota is shared by its classes in proportion (``labels``): an epoch then
        # holds a fixed number of real rows, which pseudo-fake pairs need to know its length.
        label_column = np.zeros(column.size, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        self.groups: Dict[Tuple[str, int], np.ndarray] = {}
        self.quotas: Dict[Tuple[str, int], int] = {}
        for name in self.names:
            mine = column == name
            classes = sorted(set(label_column[mine].tolist()))
            sizes = {c: int((mine & (label_column == c)).sum()) for c in classes}
            shares = source_quotas(sizes, {c: float(n) for c, n in sizes.items()}, quotas[name])
            shares[classes[-1]] += quotas[name] - sum(shares.values())  # rounding: the quota exactly
            for c in classes:
                self.groups[name, c] = np.flatnonzero(mine & (label_column == c))
                self.quotas[name, c] = shares[c]
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return sum(self.quotas.values())

    def drawn_per_label(self) -> Dict[int, int]:
        """Rows of each label one epoch draws (the same every epoch)."""
        out: Dict[int, int] = {}
        for (_, label), quota in self.quotas.items():
            out[label] = out.get(label, 0) + quota
        return out

    def _group_rows(self, key: Tuple[str, int], number: int) -> np.ndarray:
        rows, quota = self.groups[key], self.quotas[key]
        # Where this epoch starts in the group's endless sequence of permutations.
        cycle, offset = divmod(self.epoch * quota, rows.size)
        out: List[np.ndarray] = []
        while sum(len(o) for o in out) < quota:
            order = torch.randperm(rows.size, generator=torch.Generator().manual_seed(
                self.seed * 100_003 + cycle * 7_919 + number)).numpy()
            out.append(rows[order[offset:]])
            cycle, offset = cycle + 1, 0
        return np.concatenate(out)[:quota] if out else np.empty(0, dtype=np.int64)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        rows = np.concatenate([self._group_rows(key, number) for number, key in enumerate(self.groups)])
        order = torch.randperm(rows.size, generator=generator).numpy()
        seeds = torch.randint(0, 2**31 - 1, (rows.size,), generator=generator)
        return iter(zip(rows[order].tolist(), seeds.tolist()))
