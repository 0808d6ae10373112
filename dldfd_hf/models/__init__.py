"""The DLDFD network and its timm registrations (importing this module registers the models)."""

from .dldfd import (
    DLDFD,
    SHIPPED_MODEL,
    SHIPPED_MODEL_DIR,
    SHIPPED_MODEL_SUMMARY,
    checkpoint_filter_fn,
    create_dldfd,
    default_cfgs,
    fake_logit,
    fake_probabilities,
)
from .stem import AugmentedStem

__all__ = ["DLDFD", "AugmentedStem", "SHIPPED_MODEL", "SHIPPED_MODEL_DIR", "SHIPPED_MODEL_SUMMARY", "checkpoint_filter_fn", "create_dldfd", "default_cfgs",
           "fake_logit", "fake_probabilities"]
