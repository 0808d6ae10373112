"""Publishing: export a model folder with its card, render model and dataset cards, push models,
corpora and the demo Space to the Hugging Face Hub.

The model folder format itself (config.json, shims, weights) is :mod:`dldfd_hf.model_folder`; its
names are re-exported here, where ``from dldfd_hf.hub import ...`` always found them.
"""

from ..model_folder import (
    AUTO_MAP,
    MODEL_FILES,
    REMOTE_CODE_FILES,
    ModelFolderError,
    check_model_folder,
    hub_config,
    is_trained,
    save_model_folder,
    write_model_files,
)
from .export import export_model

__all__ = [
    "AUTO_MAP",
    "MODEL_FILES",
    "REMOTE_CODE_FILES",
    "ModelFolderError",
    "check_model_folder",
    "export_model",
    "hub_config",
    "is_trained",
    "save_model_folder",
    "write_model_files",
]
