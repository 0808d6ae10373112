"""Put a trained DLDFD-Lite0 into the package as the shipped detector (``dldfd_hf.models.SHIPPED_MODEL``).

Writes ``dldfd_hf/models/weights/<SHIPPED_MODEL>/``: ``model.safetensors`` in
float16 (half the size; the models load it into float32), ``config.json`` and
``preprocessor_config.json``, the same model-folder layout every export has, minus the
remote-code shims and their ``auto_map`` (importing ``dldfd_hf`` registers the classes). Prints the file's sha256 and size: record
the sha256 in ``tests/test_shipped_model.py``.

    python examples/bundle_shipped_model.py runs/ffpp_sbi_lite0/best
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from dldfd_hf import DLDFDForImageClassification
from dldfd_hf._io import atomic_folder
from dldfd_hf.model_folder import CONFIG_NAME, REMOTE_CODE_FILES, WEIGHTS_NAME, write_model_files
from dldfd_hf.models import SHIPPED_MODEL, SHIPPED_MODEL_DIR


def bundle(source: Path, target: Path = SHIPPED_MODEL_DIR) -> Path:
    model = DLDFDForImageClassification.from_pretrained(str(source), dtype=torch.float32).eval()
    if model.dldfd.init_kwargs.get("backbone") != "tf_efficientnet_lite0":
        raise SystemExit(f"error: {source} is not a dldfd_efficientnet_lite0 model")
    model.config.timm_architecture = "dldfd_efficientnet_lite0"

    with atomic_folder(target, overwrite=True) as folder:
        write_model_files(model.to(torch.float16), folder)
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        config["dtype"] = "float32"  # the weights are stored in half precision; the model runs in float32
        config["pretrained_cfg"]["tag"] = SHIPPED_MODEL.split(".", 1)[1]
        config.pop("auto_map")  # the remote-code shims are left out: importing dldfd_hf registers the classes
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for shim in REMOTE_CODE_FILES:
            (folder / shim).unlink()
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the trained model folder (train.py's OUTPUT_DIR/best)")
    args = parser.parse_args(argv)
    folder = bundle(args.model)
    weights = folder / WEIGHTS_NAME
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    print(f"{folder}: {weights.stat().st_size / 2**20:.2f} MiB, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
