"""The label convention every part of dldfd-hf shares: 0 = real, 1 = fake."""

from __future__ import annotations

REAL = 0
FAKE = 1
LABEL_NAMES = ("real", "fake")  # index = label id
ID2LABEL = {REAL: "real", FAKE: "fake"}
LABEL2ID = {"real": REAL, "fake": FAKE}

__all__ = ["FAKE", "ID2LABEL", "LABEL2ID", "LABEL_NAMES", "REAL"]
