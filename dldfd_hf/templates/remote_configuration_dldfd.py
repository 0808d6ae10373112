"""DLDFD config for ``trust_remote_code=True`` loading: the implementation is the dldfd-hf package.

This file is written by ``dldfd_hf.hub.export.export_model``. It holds no model code of its own, so the
weights in this repo always run through the tested package code (``pip install dldfd-hf``).
"""

try:
    from dldfd_hf.configuration_dldfd import DLDFDConfig as _PackageDLDFDConfig
except ImportError as error:  # transformers skips imports inside try blocks when listing requirements
    raise ImportError(
        "This DLDFD model needs the dldfd-hf package, which is not installed: run `pip install dldfd-hf` "
        "and load it again."
    ) from error


class DLDFDConfig(_PackageDLDFDConfig):
    """The dldfd-hf config; subclassed so transformers' remote-code bookkeeping stays on this class."""
