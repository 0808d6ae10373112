"""Training configuration: one dataclass, filled from a YAML file and ``--key value`` overrides.

Every field can be set in the YAML file and on the command line (the command line wins), parsed by
``transformers.HfArgumentParser``: lists as ``--betas 0.9 0.999``, mappings in YAML
(``--model_kwargs "{drop_rate: 0.2}"``), ``none`` for an optional key. Unknown keys, in either
place, are errors that name the key and suggest the closest known one, raised before any data is
read or any model is built; so are values of the wrong type and non-finite numbers (``nan``,
``inf``, YAML's ``.nan`` / ``.inf``) for any key, ``model_kwargs`` values included.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import yaml
from transformers import HfArgumentParser

from ..inference.voting import STRATEGIES, VotingRule

__all__ = ["ConfigError", "TrainingConfig", "build_arg_parser", "load_config", "metric_direction"]

MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
SAVE_STRATEGIES = ("no", "epoch", "steps")
AUGMENTATIONS = ("none", "sbi")
PSEUDO_FAKE_MODES = ("none", "sbi", "sbi+ffpp")  # dldfd_hf.training.pseudo_fakes (kept import-free here)
# Validation metrics a best model can be chosen by (flattened "<level>/<name>" keys of the results).
SELECTABLE_METRICS = (
    "loss",
    *(f"frame/{m}" for m in ("tcr", "balanced_accuracy", "auc", "ap", "eer")),
    *(f"video/{m}" for m in ("tcr", "balanced_accuracy", "auc", "mean_prob_tcr")),
)
LOWER_IS_BETTER = ("loss", "frame/eer")


class ConfigError(ValueError):
    """A configuration file or command-line override is invalid (the message says which and why)."""


@dataclass
class TrainingConfig:
    """All settings of ``examples/train.py``; see ``examples/configs/*.yaml`` for commented examples."""

    # --- data -----------------------------------------------------------------------------------
    data: Optional[str] = None
    """Corpus folder written by ``dldfd build-ffpp`` (``load_from_disk``) or a Hub dataset id."""
    sources: Dict[str, str] = field(default_factory=dict)
    """Several corpora trained on together instead of ``data``: ``{name: folder or Hub id}``, e.g.
    FF++ frames beside a ``dldfd build-faces`` corpus. Validation and test report each one too.
    See :mod:`dldfd_hf.training.sources`."""
    source_weights: Dict[str, float] = field(default_factory=dict)
    """Each source's share of the rows a training epoch draws (default: equal shares)."""
    epoch_rows: Optional[int] = None
    """Rows a training epoch draws with ``sources`` (default: all training rows, once on average)."""
    protocol: str = "combined"
    """``combined``, ``single:<Method>`` or ``cross:<Method>`` (paper Table 2)."""
    max_train_samples: Optional[int] = None
    """Use only the first N training frames (after the protocol), for quick runs."""
    max_eval_samples: Optional[int] = None
    """Use only the first N validation and test frames."""
    hflip: float = 0.5
    """Probability of a random horizontal flip during training (the paper's augmentation)."""
    image_size: Optional[int] = None
    """Input size; default: the model's ``pretrained_cfg`` input size."""
    balanced_sampling: bool = False
    """Draw training frames with equal probability per class (then ``pos_weight`` defaults to none)."""
    num_workers: int = 2
    """DataLoader worker processes (decoding + augmentation happen there)."""
    pseudo_fakes: str = "none"
    """Self-blended pseudo-fakes (SBI) made from real rows on the fly: ``none``; ``sbi`` (train on the
    corpus's real rows only, e.g. a ``dldfd build-faces`` corpus of your own footage); ``sbi+ffpp``
    (beside the corpus's fakes). See :mod:`dldfd_hf.training.pseudo_fakes`."""
    augmentation: str = "none"
    """``none`` (resize and flip, the paper's); ``sbi``: SBI's crop jitter, colour changes and JPEG,
    the same for a real crop and its pseudo-fake; evaluation then cuts the 1.3x face square from the
    stored crops (build them wider: ``dldfd build-faces --crop-scale 1.8``). See
    :mod:`dldfd_hf.training.augment`."""
    pseudo_fake_probability: float = 0.5
    """Chance that a real training row is turned into a pseudo-fake (with ``pseudo_fakes``)."""
    pseudo_fake_pairs: bool = False
    """SBI's batches instead: every real row drawn comes as it is AND as its pseudo-fake, side by side
    (``pseudo_fake_probability`` is then unused). Keep ``batch_size`` even."""
    h264_probability: float = 0.0
    """With ``augmentation: sbi``: the chance that a training crop (a real one and its pseudo-fake
    alike) is re-encoded as H.264 after shrinking it to 40-100% of its side, instead of the JPEG /
    resolution steps: compressed video for reals and fakes alike. See :func:`~dldfd_hf.training.augment.h264_roundtrip`."""
    h264_crf: List[int] = field(default_factory=lambda: [23, 40])
    """CRF range of that re-encoding (FF++ c23 is CRF 23, c40 CRF 40)."""

    # --- model ----------------------------------------------------------------------------------
    model: str = "dldfd_resnet50"
    """Registered timm architecture (``dldfd_resnet50``, ``dldfd_resnet18``, ``dldfd_tiny``)."""
    model_kwargs: Dict[str, Any] = field(default_factory=dict)
    """Extra ``timm.create_model`` arguments (``stem_out_chans``, ``drop_rate``, ...)."""
    pretrained_backbone: bool = True
    """Start the backbone from its ImageNet weights (``resnet50.tv_in1k``), as in the paper."""
    init_from: Optional[str] = None
    """Fine-tune an existing model instead: Hub id, model folder or training checkpoint."""
    channels_last: bool = False
    """Use the channels-last memory format (faster convolutions on recent GPUs)."""

    # --- optimisation ---------------------------------------------------------------------------
    epochs: int = 25
    batch_size: int = 32
    """Per device."""
    eval_batch_size: int = 64
    """Per device."""
    learning_rate: float = 1e-3
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    gradient_accumulation_steps: int = 1
    max_grad_norm: Optional[float] = None
    # float before str: HfArgumentParser then reads the option as text, which __post_init__ turns
    # into a number unless it is "auto" (str first would make it a float option that refuses "auto").
    pos_weight: Union[float, str, None] = "auto"
    """BCE weight of the fake class: ``auto`` = #real / #fake of the training set (the paper's
    weighted BCE), a positive number, or ``none``."""
    mixed_precision: str = "no"
    """``no``, ``fp16`` or ``bf16`` (overrides ``accelerate config``)."""
    seed: int = 42
    cpu: bool = False
    """Train on CPU even when a GPU is available (a multi-process launch without GPUs uses CPU DDP anyway)."""

    # --- evaluation, checkpoints, logging -------------------------------------------------------
    metric_for_best_model: str = "frame/balanced_accuracy"
    validate_before_training: bool = False
    """Also score the untrained model (history entry with epoch 0): the baseline to beat."""
    video_strategy: str = VotingRule.strategy
    """Frame votes -> video label: ``majority`` (paper), ``mean`` or ``max_mean`` (at P(fake) 0.5)."""
    output_dir: Optional[str] = None
    save_strategy: str = "epoch"
    """When to save the full training state (a checkpoint): ``no``, every ``epoch``, or every
    ``save_steps`` optimizer steps (``steps``)."""
    save_steps: int = 500
    """Optimizer steps between checkpoints with ``save_strategy: steps``."""
    checkpoints_total_limit: Optional[int] = 2
    """Keep only the newest N checkpoints (``none`` keeps all)."""
    resume_from_checkpoint: Optional[str] = None
    """A checkpoint folder, or ``latest`` (newest in ``OUTPUT_DIR/checkpoints``)."""
    report_to: str = "none"
    """Trackers for ``accelerate``: ``none``, ``all``, ``tensorboard``, ``wandb``, ... (comma-separated)."""
    logging_steps: int = 10
    save_predictions: bool = True
    """Write per-frame test predictions (``OUTPUT_DIR/predictions_test.csv``)."""

    def __post_init__(self) -> None:
        for key in ("mixed_precision", "save_strategy"):
            if getattr(self, key) is False:
                setattr(self, key, "no")  # YAML 1.1 reads an unquoted `no` as false
        weight = self.pos_weight
        if isinstance(weight, (int, str)) and not isinstance(weight, bool) and weight != "auto":
            with contextlib.suppress(ValueError):  # validate() names what is wrong
                self.pos_weight = float(weight)  # text from the command line, an int from YAML
        self.validate()

    def validate(self) -> None:
        """Check values that can be checked without reading data; raise :class:`ConfigError`."""
        def fail(key: str, message: str) -> None:
            raise ConfigError(f"config key {key!r}: {message}")

        # First the types (a YAML file's values reach here as YAML typed them), then nan, which
        # compares false with everything, so the range checks below would let it through.
        for key, hint in _HINTS.items():
            value = getattr(self, key)
            if not _is_a(value, hint):
                fail(key, f"expected {_type_name(hint)}, got {value!r}")
            bad = _non_finite(value)
            if bad is not None:
                fail(key, f"must be a finite number, got {bad}")

        for key in ("epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps", "logging_steps",
                    "save_steps"):
            if getattr(self, key) < 1:
                fail(key, f"must be >= 1, got {getattr(self, key)!r}")
        for key in ("max_train_samples", "max_eval_samples", "image_size", "checkpoints_total_limit"):
            value = getattr(self, key)
            if value is not None and value < 1:
                fail(key, f"must be >= 1 or none, got {value!r}")
        if self.num_workers < 0:
            fail("num_workers", f"must be >= 0, got {self.num_workers}")
        if not 0.0 <= self.hflip <= 1.0:
            fail("hflip", f"is a probability in [0, 1], got {self.hflip}")
        if self.learning_rate <= 0:
            fail("learning_rate", f"must be positive, got {self.learning_rate}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            fail("betas", f"needs two values in [0, 1), got {self.betas}")
        if self.warmup_steps < 0:
            fail("warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            fail("max_grad_norm", f"must be positive or none, got {self.max_grad_norm}")
        if isinstance(self.pos_weight, str) and self.pos_weight != "auto":
            fail("pos_weight", f"must be 'auto', a positive number or none, got {self.pos_weight!r}")
        if isinstance(self.pos_weight, float) and self.pos_weight <= 0:
            fail("pos_weight", f"must be positive, got {self.pos_weight}")
        if not 0.0 <= self.h264_probability <= 1.0:
            fail("h264_probability", f"is a probability in [0, 1], got {self.h264_probability}")
        if self.h264_probability > 0 and self.augmentation != "sbi":
            fail("h264_probability", "needs augmentation: sbi (the re-encoding is one of its steps)")
        if len(self.h264_crf) != 2 or not 0 <= self.h264_crf[0] <= self.h264_crf[1] <= 51:
            fail("h264_crf", f"needs [low, high] with 0 <= low <= high <= 51, got {self.h264_crf}")
        if self.data and self.sources:
            fail("sources", "replaces data: set one of them")
        unknown = sorted(set(self.source_weights) - set(self.sources))
        if unknown:
            fail("source_weights", f"names source(s) {unknown} that sources does not define ({sorted(self.sources)})")
        if any(not w > 0 for w in self.source_weights.values()):
            fail("source_weights", f"weights must be positive, got {self.source_weights}")
        if self.epoch_rows is not None and self.epoch_rows < 1:
            fail("epoch_rows", f"must be >= 1 or none, got {self.epoch_rows!r}")
        if self.source_weights and self.balanced_sampling:
            fail("balanced_sampling", "cannot be combined with source_weights (each source's share is set there)")
        if not 0.0 < self.pseudo_fake_probability <= 1.0:
            fail("pseudo_fake_probability", f"is a probability in (0, 1], got {self.pseudo_fake_probability}")
        _choice("pseudo_fakes", self.pseudo_fakes, PSEUDO_FAKE_MODES)
        _choice("augmentation", self.augmentation, AUGMENTATIONS)
        if self.pseudo_fake_pairs and self.pseudo_fakes == "none":
            fail("pseudo_fake_pairs", "needs pseudo_fakes: sbi or sbi+ffpp")
        if self.pseudo_fake_pairs and self.balanced_sampling:
            fail("pseudo_fake_pairs", "pairs every real row once per epoch; it cannot be combined with balanced_sampling")
        if self.pseudo_fakes == "sbi" and self.balanced_sampling:
            fail("balanced_sampling", "cannot balance a corpus of real rows only (pseudo_fakes: sbi); "
                 "pseudo_fake_probability sets the share of fakes")
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _choice("lr_scheduler", self.lr_scheduler, LR_SCHEDULERS)
        _choice("video_strategy", self.video_strategy, STRATEGIES)
        _choice("metric_for_best_model", self.metric_for_best_model, SELECTABLE_METRICS)
        _choice("save_strategy", self.save_strategy, SAVE_STRATEGIES)
        if not isinstance(self.protocol, str) or not self.protocol:
            fail("protocol", f"must be 'combined', 'single:<Method>' or 'cross:<Method>', got {self.protocol!r}")

    @property
    def voting_rule(self) -> VotingRule:
        """How validation and test turn frame scores into video verdicts."""
        return VotingRule(self.video_strategy)

    def require_run_settings(self) -> None:
        """``data`` and ``output_dir`` have no default: a run needs both."""
        missing = [key for key in ("data", "output_dir") if not getattr(self, key)]
        if self.sources and "data" in missing:
            missing.remove("data")
        if missing:
            raise ConfigError(
                "missing required setting(s): " + ", ".join(missing)
                + " (set them in the YAML file or pass --data PATH_OR_HUB_ID / --output_dir DIR)"
            )

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def metric_direction(metric: str) -> str:
    """``"min"`` for losses and error rates, ``"max"`` for everything else."""
    return "min" if metric in LOWER_IS_BETTER else "max"


def _is_a(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the declared type ``hint`` (an int passes for a float; a bool is neither)."""
    origin, options = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return any(_is_a(value, option) for option in options)
    if origin in (list, dict):
        items = value.values() if isinstance(value, dict) else value
        return isinstance(value, origin) and all(_is_a(item, options[-1]) for item in items)
    if hint in (int, float):
        return isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
    return hint is Any or isinstance(value, hint)


def _type_name(hint: Any) -> str:
    options = typing.get_args(hint) if typing.get_origin(hint) is Union else (hint,)
    return " or ".join("none" if option is type(None) else option.__name__ if isinstance(option, type)
                       else str(option).replace("typing.", "") for option in options)


def _non_finite(value: Any) -> Optional[float]:
    """The first nan / inf float in ``value`` (a number, or a list / dict holding numbers), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        return None
    for item in items:
        bad = _non_finite(item)
        if bad is not None:
            return bad
    return None


def _choice(key: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        raise ConfigError(
            f"config key {key!r}: {value!r} is not one of {list(choices)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )


# --- parsing ------------------------------------------------------------------------------------

_FIELDS = [f.name for f in dataclasses.fields(TrainingConfig)]
_HINTS = typing.get_type_hints(TrainingConfig)


def build_arg_parser(description: Optional[str] = None) -> HfArgumentParser:
    """``--config FILE`` plus one ``--key VALUE`` option per :class:`TrainingConfig` field."""
    parser = HfArgumentParser(
        TrainingConfig,
        description=description,
        allow_abbrev=False,  # a typo must be an error, not a silent prefix match
        exit_on_error=False,  # load_config turns a bad value into a ConfigError
    )
    parser.add_argument("--config", type=str, default=None, help="YAML file with any of the keys below")
    for action in parser._actions:
        hint = _HINTS.get(action.dest)
        if hint is None or action.option_strings[0] == f"--no_{action.dest}":
            continue  # --config, --help, or HfArgumentParser's --no_<key> of a bool key
        action.help = "(default: %(default)r)"  # the formatter shows defaults only beside a help text
        if typing.get_origin(hint) is dict:
            action.type = _mapping  # HfArgumentParser has no type for a dict: written as in the YAML file
        elif type(None) in typing.get_args(hint):
            action.type = _or_none(action.type)  # `--max_grad_norm none` unsets what the YAML file set
    return parser


def load_config(argv: Optional[Sequence[str]] = None, parser: Optional[HfArgumentParser] = None) -> TrainingConfig:
    """Parse ``argv``: defaults < ``--config`` YAML < ``--key value`` overrides. Raises ConfigError.

    The YAML file's values become the parser's defaults (as TRL's ``TrlParser`` layers a config
    file), so text from the file (``1e-3``, ``none``) and from the command line is read by the same
    field types, and the one :class:`TrainingConfig` is validated once, with the overrides applied.
    """
    parser = parser or build_arg_parser()
    find_file = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    find_file.add_argument("--config")
    try:
        config_file = find_file.parse_known_args(argv)[0].config
        if config_file:
            parser.set_defaults(**_read_yaml(Path(config_file)))
        config, _, unknown = parser.parse_args_into_dataclasses(
            argv, return_remaining_strings=True, look_for_args_file=False
        )
    except argparse.ArgumentError as error:
        key = (error.argument_name or "").split("/")[0].lstrip("-")
        bad_value = re.fullmatch(r"invalid (.+) value: (.*)", error.message)
        reason = f"expected {bad_value[1]}, got {bad_value[2]}" if bad_value else error.message
        raise ConfigError(f"config key {key!r}: {reason}") from None
    if unknown:
        flag = next((u for u in unknown if u.startswith("--")), unknown[0])
        if flag.startswith("--"):
            raise _unknown_key(flag[2:].split("=", 1)[0], "the command line")
        raise ConfigError(f"unexpected command-line argument {flag!r} (options look like --key value)")
    return config


def _unknown_key(key: str, source: str) -> ConfigError:
    hint = difflib.get_close_matches(key, _FIELDS, n=1)
    return ConfigError(
        f"unknown config key {key!r} in {source}"
        + (f": did you mean {hint[0]!r}?" if hint else "")
        + " (run examples/train.py --help for the list of keys)"
    )


def _read_yaml(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must be a mapping of keys to values, got {type(content).__name__}")
    for key in content:
        if key not in _FIELDS:
            raise _unknown_key(str(key), str(path))
    return content


def _or_none(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """``convert``, except that ``none`` (or ``null``) is None."""
    def parse(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null", "~") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")  # argparse names it in "invalid int value"
    return parse


def _mapping(text: str) -> Dict[str, Any]:
    """``{key: value, ...}`` in YAML, e.g. ``--model_kwargs "{drop_rate: 0.2}"``."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(text)
    return value


_mapping.__name__ = "mapping"
