"""DLDFD models for ``trust_remote_code=True`` loading: the implementation is the dldfd-hf package.

This file is written by ``dldfd_hf.hub.export.export_model``. It holds no model code of its own, so the
weights in this repo always run through the tested package code (``pip install dldfd-hf``).
"""

try:
    from dldfd_hf.modeling_dldfd import DLDFDForImageClassification as _PackageForImageClassification
    from dldfd_hf.modeling_dldfd import DLDFDModel as _PackageModel
except ImportError as error:  # transformers skips imports inside try blocks when listing requirements
    raise ImportError(
        "This DLDFD model needs the dldfd-hf package, which is not installed: run `pip install dldfd-hf` "
        "and load it again."
    ) from error

from .configuration_dldfd import DLDFDConfig


class DLDFDModel(_PackageModel):
    """The DLDFD network without its classifier (pooled features)."""

    config_class = DLDFDConfig


class DLDFDForImageClassification(_PackageForImageClassification):
    """DLDFD with its real/fake head: logits ``[0, z]``, ``P(fake) = sigmoid(z)``."""

    config_class = DLDFDConfig
