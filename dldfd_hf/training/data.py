"""Corpus loading and the training/evaluation input pipeline.

Rows of a corpus (one face crop each, schema: :func:`dldfd_hf.data.workdir.corpus_features`) are decoded, resized, flipped and
normalised on the fly inside DataLoader workers by :class:`FrameDataset`.

Reproducibility: the shuffling order and the flips of an epoch are a pure function of
``(seed, epoch)`` (:class:`EpochSampler` draws them from its own generator and hands each sample its
flip seed), so they do not depend on the number of workers, on the process count, or on whether the
run was interrupted and resumed.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler
from torchvision.transforms.v2 import functional as F

from ..inference.loading import looks_like_hub_id
from .pseudo_fakes import PSEUDO_FAKE_METHOD

__all__ = [
    "CorpusError",
    "EpochSampler",
    "FrameDataset",
    "FrameTransform",
    "collate_frames",
    "load_corpus",
    "read_column",
]

# PIL resampling filters by timm's ``pretrained_cfg["interpolation"]`` names.
_INTERPOLATION = {
    "bilinear": F.InterpolationMode.BILINEAR,
    "bicubic": F.InterpolationMode.BICUBIC,
    "nearest": F.InterpolationMode.NEAREST,
}
REQUIRED_COLUMNS = ("image", "label", "method", "video_id")


class CorpusError(ValueError):
    """The corpus cannot be used: not found, not a train/validation/test DatasetDict, or wrong columns."""


def load_corpus(path_or_id: Union[str, Path]):
    """A corpus :class:`datasets.DatasetDict` from a folder or a Hub dataset id.

    A folder is either what ``dldfd build-ffpp`` writes (``load_from_disk``) or a Parquet export in
    the Hub layout (``--parquet DIR``; read by ``load_dataset`` exactly as the Hub repo would be).
    Raises :class:`CorpusError` with what was expected when the path does not hold a corpus.
    """
    text = str(path_or_id)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CorpusError(f"corpus {text!r} is a file; expected a folder written by `dldfd build-ffpp`")
        if not (path / "dataset_dict.json").is_file() and next(path.rglob("*.parquet"), None) is not None:
            corpus = datasets.load_dataset(str(path))
        else:
            try:
                corpus = datasets.load_from_disk(str(path))
            except FileNotFoundError as error:
                raise CorpusError(
                    f"{text!r} is not a saved corpus (no dataset_dict.json / dataset_info.json, no Parquet "
                    f"files): build one with `dldfd build-ffpp ROOT {text}` ({error})"
                ) from None
    elif looks_like_hub_id(text):
        try:
            corpus = datasets.load_dataset(text)
        except Exception as error:  # offline, missing repo, no access: all surface as different types
            raise CorpusError(f"could not load the Hub dataset {text!r}: {error}") from None
    else:
        raise CorpusError(
            f"corpus not found: {text!r} is neither a folder nor a Hub dataset id (expected a folder "
            "written by `dldfd build-ffpp` / `datasets.save_to_disk`, or 'org/name')"
        )
    if not isinstance(corpus, datasets.DatasetDict):
        raise CorpusError(f"{text!r} holds a single Dataset; a corpus is a DatasetDict with train/validation/test")
    for split, ds in corpus.items():
        missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
        if missing:
            raise CorpusError(
                f"corpus {text!r} split {split!r} lacks column(s) {missing}; it has {ds.column_names}"
            )
    return corpus


def read_column(dataset, name: str) -> List[Any]:
    """One column as Python values without decoding images; ClassLabel ids become their names."""
    values = dataset.select_columns([name])[name]
    feature = dataset.features[name]
    if hasattr(feature, "int2str"):
        return feature.int2str(list(values))
    return list(values)


class FrameTransform:
    """Face crop (PIL) -> normalised float tensor (C, H, W): resize, optional flip, normalise.

    Resizing happens on the PIL image with the model's interpolation, as the exported image
    processor does, so training, evaluation and the pipelines see the same pixels.
    """

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        hflip: float = 0.0,
        interpolation: str = "bilinear",
    ) -> None:
        self.image_size = int(image_size)
        self.mean = list(mean)
        self.std = list(std)
        self.hflip = float(hflip)
        self.interpolation = _INTERPOLATION.get(interpolation, F.InterpolationMode.BILINEAR)

    @classmethod
    def for_config(cls, config: Any, hflip: float = 0.0) -> "FrameTransform":
        """The transform of a :class:`~dldfd_hf.DLDFDConfig`: its image size, mean and std (bilinear,
        as the exported ``preprocessor_config.json``)."""
        return cls(config.image_size, config.image_mean, config.image_std, hflip=hflip)

    def __call__(self, image: Image.Image, rng: Optional[random.Random] = None) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = F.resize(image, [self.image_size, self.image_size], interpolation=self.interpolation)
        if rng is not None and self.hflip > 0 and rng.random() < self.hflip:
            image = F.horizontal_flip(image)
        tensor = F.to_dtype(F.pil_to_tensor(image), torch.float32, scale=True)
        return F.normalize(tensor, self.mean, self.std)


class FrameDataset(TorchDataset):
    """A corpus split (a :class:`datasets.Dataset`) as model inputs.

    Items are ``{"pixel_values", "labels", "index"}``; ``index`` is the row in ``dataset`` so that
    predictions gathered from many processes can be matched back to their (method, video_id).
    A key may be a row number, or ``(row, flip_seed)`` as yielded by :class:`EpochSampler`: the
    seed drives this sample's random augmentation.

    ``self_blender`` (a :class:`~dldfd_hf.data.sbi.SelfBlender`): a real row drawn with a seed
    becomes a self-blended pseudo-fake (label 1) with the blender's probability, decided by that
    seed; a key ``(row, seed, pseudo_fake)`` decides it instead (0 or 1; see
    :class:`~dldfd_hf.training.pseudo_fakes.PseudoFakePairs`). Rows of method ``SelfBlended`` (see
    :mod:`dldfd_hf.training.pseudo_fakes`) are always blended, with their row number as the seed.

    ``augment`` (a :class:`~dldfd_hf.training.augment.FaceAugment`): applied after the blend, with the
    sample's seed (training: crop jitter, colour, JPEG) or without one (evaluation: the 1.3x face crop).
    """

    def __init__(
        self, dataset, transform: FrameTransform, self_blender: Optional[Any] = None, augment: Optional[Any] = None
    ) -> None:
        # Only the columns the model needs: the other columns are never read per item.
        columns = ["image", "label"]
        self.augment = augment
        if augment is not None and "landmarks" in dataset.column_names:
            columns.append("landmarks")
        # A copy per dataset: the blender caches detected landmarks by row number.
        self.self_blender = copy.deepcopy(self_blender)
        self._blended_method: Optional[int] = None
        if self_blender is not None:
            columns += [c for c in ("landmarks", "method") if c in dataset.column_names and c not in columns]
            names = getattr(dataset.features.get("method"), "names", None) or []
            if PSEUDO_FAKE_METHOD in names:
                self._blended_method = names.index(PSEUDO_FAKE_METHOD)
        self.dataset = dataset.select_columns(columns)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Union[int, Tuple[int, int], Tuple[int, int, int]]) -> Dict[str, Any]:
        return self._sample(key, self.dataset[int(key[0] if isinstance(key, tuple) else key)], owned=True)

    def __getitems__(self, keys: Sequence[Any]) -> List[Dict[str, Any]]:
        """A batch (the DataLoader's path): a row drawn twice in a row, as a real / pseudo-fake pair
        is, is decoded once."""
        rows = [int(key[0] if isinstance(key, tuple) else key) for key in keys]
        samples, item = [], None
        for i, (key, row) in enumerate(zip(keys, rows)):
            if i == 0 or rows[i - 1] != row:
                item = self.dataset[row]
            # The last sample of a run of one row may paste into the decoded image.
            samples.append(self._sample(key, item, owned=i + 1 == len(rows) or rows[i + 1] != row))
        return samples

    def _sample(self, key: Any, item: Dict[str, Any], owned: bool) -> Dict[str, Any]:
        row, seed, pseudo_fake = (tuple(key) + (None,))[:3] if isinstance(key, tuple) else (key, None, None)
        image, label = item["image"], int(item["label"])
        if self.self_blender is not None:
            landmarks = item.get("landmarks")
            # Blending pastes into the decoded image when nothing else will read it (``owned``),
            # else into a copy.
            if self._blended_method is not None and item.get("method") == self._blended_method:
                image = self.self_blender.blend(image, landmarks, seed=int(row), key=int(row), in_place=owned)
            elif seed is not None and label == 0 and pseudo_fake is None:
                fake = self.self_blender(image, landmarks, seed=seed, key=int(row), in_place=owned)
                if fake is not None:
                    image, label = fake, 1
            elif seed is not None and label == 0 and pseudo_fake:
                image, label = self.self_blender.blend(image, landmarks, seed=seed, key=int(row), in_place=owned), 1
        rng = random.Random(seed) if seed is not None else None
        if self.augment is not None:
            image = self.augment(image, item.get("landmarks"), rng)
        return {
            "pixel_values": self.transform(image, rng),
            "labels": label,
            "index": int(row),
        }


def collate_frames(items: Sequence[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in items]),
        "labels": torch.tensor([item["labels"] for item in items], dtype=torch.long),
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),
    }


class EpochSampler(Sampler):
    """Training order for one epoch, a pure function of ``(seed, epoch)``.

    Yields ``(row, flip_seed)`` pairs. ``balanced=True`` draws rows with replacement so each class
    is equally likely (same number of draws per epoch as rows); otherwise a permutation.
    Call :meth:`set_epoch` before iterating each epoch.
    """

    def __init__(self, labels: Sequence[int], seed: int, balanced: bool = False) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.size == 0:
            raise ValueError("EpochSampler: the training split is empty")
        self.seed = int(seed)
        self.balanced = balanced
        self.epoch = 0
        if balanced:
            counts = np.bincount(self.labels, minlength=2).astype(np.float64)
            if (counts == 0).any():
                raise ValueError(
                    f"balanced sampling needs both classes in the training split, got {counts.astype(int).tolist()} real/fake"
                )
            self.weights = torch.as_tensor(1.0 / counts[self.labels], dtype=torch.float64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.labels.size)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        n = len(self)
        if self.balanced:
            rows = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        else:
            rows = torch.randperm(n, generator=generator)
        flip_seeds = torch.randint(0, 2**31 - 1, (n,), generator=generator)
        return iter(zip(rows.tolist(), flip_seeds.tolist()))
