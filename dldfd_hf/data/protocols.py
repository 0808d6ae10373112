"""The paper's evaluation protocols (Table 2) as views of a built FF++ corpus.

- ``combined``: real vs all manipulation methods of the corpus, in every split.
- ``single:<Method>``: real vs one method, in every split.
- ``cross:<Method>``: train/validation on real + every other method, test on real + the held-out one.

A view selects row indices (no copy of the images). ``pos_weight`` is the BCE weight of the
positive (fake) class, ``#real / #fake`` in the training split: FF++ is ~1 real : 4 fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
from datasets import Dataset, DatasetDict, load_from_disk

from ..labels import LABEL_NAMES
from .ffpp import ORIGINAL, SPLITS

PROTOCOL_KINDS = ("combined", "single", "cross")


@dataclass(frozen=True)
class Protocol:
    """A parsed protocol name: ``kind`` and, for single/cross, the ``method``."""

    kind: str
    method: Optional[str] = None

    @property
    def name(self) -> str:
        return self.kind if self.method is None else f"{self.kind}:{self.method}"

    def methods_for(self, split: str, available: Sequence[str]) -> tuple[str, ...]:
        """The fake methods a split of this protocol contains."""
        if self.kind == "combined":
            return tuple(available)
        if self.kind == "single":
            return (self.method,)
        return (self.method,) if split == "test" else tuple(m for m in available if m != self.method)


def parse_protocol(name: str, available: Optional[Sequence[str]] = None) -> Protocol:
    """``"combined"``, ``"single:<Method>"`` or ``"cross:<Method>"``; checks the method exists."""
    kind, _, method = name.partition(":")
    if kind not in PROTOCOL_KINDS:
        raise ValueError(f"unknown protocol {name!r}: use combined, single:<Method> or cross:<Method>")
    if kind == "combined":
        if method:
            raise ValueError(f"protocol 'combined' takes no method, got {name!r}")
        return Protocol(kind)
    if not method:
        raise ValueError(f"protocol {kind!r} needs a method, e.g. '{kind}:Deepfakes'")
    if available is not None:
        if method not in available:
            raise ValueError(
                f"protocol {name!r}: the corpus has no method {method!r} (it has {', '.join(available) or 'none'})"
            )
        if kind == "cross" and len(available) < 2:
            raise ValueError(f"protocol {name!r} needs at least two methods in the corpus, it has {', '.join(available)}")
    return Protocol(kind, method)


@dataclass
class ProtocolView:
    """The train/validation/test datasets of one protocol, with class counts and the BCE weight."""

    protocol: Protocol
    splits: DatasetDict
    methods: dict[str, tuple[str, ...]]
    class_counts: dict[str, dict[str, int]]

    @property
    def name(self) -> str:
        return self.protocol.name

    @property
    def train(self) -> Dataset:
        return self.splits["train"]

    @property
    def validation(self) -> Dataset:
        return self.splits["validation"]

    @property
    def test(self) -> Dataset:
        return self.splits["test"]

    @property
    def pos_weight(self) -> float:
        """BCE ``pos_weight`` = #real / #fake frames of the training split."""
        counts = self.class_counts["train"]
        if counts["fake"] == 0:
            raise ValueError(f"protocol {self.name}: the training split has no fake rows")
        return counts["real"] / counts["fake"]

    def summary(self) -> str:
        lines = [f"protocol {self.name} (pos_weight {self.pos_weight:.4f})"]
        for split in SPLITS:
            c = self.class_counts[split]
            lines.append(f"  {split:<10} real {c['real']:>8}  fake {c['fake']:>8}  methods {', '.join(self.methods[split])}")
        return "\n".join(lines)


def corpus_methods(corpus: DatasetDict) -> tuple[str, ...]:
    """The fake methods present in any split of the corpus, in ClassLabel order."""
    names = _method_names(corpus)
    present: set[int] = set()
    for ds in corpus.values():
        present.update(np.unique(_column(ds, "method")).tolist())
    return tuple(names[i] for i in sorted(present) if names[i] != ORIGINAL)


def protocol_view(corpus: Union[DatasetDict, str], protocol: Union[str, Protocol]) -> ProtocolView:
    """Select the rows of ``protocol`` from a corpus (a :class:`DatasetDict` or its folder)."""
    if not isinstance(corpus, DatasetDict):
        corpus = load_from_disk(str(corpus))
        if not isinstance(corpus, DatasetDict):
            raise ValueError("the corpus folder holds a single Dataset, expected a DatasetDict train/validation/test")
    missing = [s for s in SPLITS if s not in corpus]
    if missing:
        raise ValueError(f"corpus lacks split(s) {', '.join(missing)} (has {', '.join(corpus)})")
    available = corpus_methods(corpus)
    if isinstance(protocol, str):
        protocol = parse_protocol(protocol, available)
    names = _method_names(corpus)
    splits, methods, counts = {}, {}, {}
    for split in SPLITS:
        ds = corpus[split]
        methods[split] = protocol.methods_for(split, available)
        keep_ids = [names.index(ORIGINAL)] + [names.index(m) for m in methods[split]]
        indices = np.flatnonzero(np.isin(_column(ds, "method"), keep_ids))
        view = ds.select(indices)
        labels = _column(ds, "label")[indices]
        counts[split] = _count_labels(labels)
        splits[split] = view
    return ProtocolView(protocol=protocol, splits=DatasetDict(splits), methods=methods, class_counts=counts)


def class_counts(ds: Dataset) -> dict[str, int]:
    """Rows per class of a split, ``{"real": n, "fake": m}``, without decoding the images."""
    return _count_labels(_column(ds, "label"))


def _count_labels(labels: np.ndarray) -> dict[str, int]:
    return {name: int((labels == i).sum()) for i, name in enumerate(LABEL_NAMES)}


def _method_names(corpus: DatasetDict) -> list[str]:
    return list(next(iter(corpus.values())).features["method"].names)


def _column(ds: Dataset, name: str) -> np.ndarray:
    # One column as numpy, without decoding the images.
    return np.asarray(ds.with_format("numpy", columns=[name])[name])
