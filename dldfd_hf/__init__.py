"""dldfd-hf: the DLDFD deepfake detector for timm, transformers and datasets.

Importing this package registers the ``dldfd_*`` timm models and the ``dldfd`` transformers
auto classes; nothing else needs to be called.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, ViTImageProcessor

from .configuration_dldfd import DLDFDConfig
from .modeling_dldfd import (
    DLDFDForImageClassification,
    DLDFDModel,
    DLDFDPreTrainedModel,
    image_processor_for,
)
from .models import DLDFD, SHIPPED_MODEL, AugmentedStem, create_dldfd

__version__ = "0.1.0"

AutoConfig.register(DLDFDConfig.model_type, DLDFDConfig, exist_ok=True)
AutoModel.register(DLDFDConfig, DLDFDModel, exist_ok=True)
AutoModelForImageClassification.register(DLDFDConfig, DLDFDForImageClassification, exist_ok=True)
# A DLDFD folder's image processor is the stock ViTImageProcessor (image_processor_for). Registered, it is
# found locally: a folder (model_type dldfd) that auto-maps an image processor class of its own to
# Python beside it gets this one instead, with no trust_remote_code prompt (README, Reliability).
AutoImageProcessor.register(DLDFDConfig, image_processor_classes={"torchvision": ViTImageProcessor}, exist_ok=True)

from .inference.pipelines import DeepfakeVideoDetectionPipeline, register_pipeline  # noqa: E402

register_pipeline()  # pipeline("deepfake-video-detection", model=...)


__all__ = [
    "DLDFD",
    "AugmentedStem",
    "DLDFDConfig",
    "DLDFDModel",
    "DLDFDForImageClassification",
    "DLDFDPreTrainedModel",
    "DeepfakeVideoDetectionPipeline",
    "SHIPPED_MODEL",
    "create_dldfd",
    "image_processor_for",
]
