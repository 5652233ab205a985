"""The settings of a run, parsed once at the boundary (CLI, YAML study or API) and passed down.

:class:`RunSettings` holds what every stage of a run shares — the device, the extraction's
precision, batch size, window policy and layers, the caches, the seed and the interval settings —
so that no stage re-parses or re-defaults them. The small parsers here are the only ones in the
package: :func:`resolve_device`, :func:`parse_layers`, :func:`split_list`, and the constant
:data:`FINAL_LAYER`.

Example:
    >>> s = RunSettings(device="cpu", layers=parse_layers("all"), seed=3)
    >>> s.extraction()["device"], s.extraction()["layers"]
    ('cpu', 'all')
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ecgprobe.exceptions import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "FINAL_LAYER",
    "PRECISIONS",
    "PROFILE_NAMES",
    "WINDOWS",
    "LayerSpec",
    "RunSettings",
    "final_layer",
    "parse_layers",
    "resolve_device",
    "split_list",
]

#: The name of an encoder's official embedding (its final, pooled output) among its layers.
FINAL_LAYER = "embedding"
#: Window policies of the extractor (see :func:`ecgprobe.extract.extract`).
WINDOWS: tuple[str, ...] = ("official", "fit", "sliding")
#: Autocast precisions of the extractor.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
#: Analysis settings profiles (their contents: :data:`ecgprobe.workflows.plan.PROFILES`).
PROFILE_NAMES: tuple[str, ...] = ("full", "quick")

T = TypeVar("T")
#: ``None`` (the official embedding), ``"all"`` (every layer) or layer names.
LayerSpec = None | Literal["all"] | tuple[str, ...]


def final_layer(layers: Mapping[str, T]) -> T:
    """The official embedding among extracted layers ``{layer: ...}`` (else the last one)."""
    return layers[FINAL_LAYER] if FINAL_LAYER in layers else list(layers.values())[-1]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when a GPU is usable, else CPU; any other name is checked.

    Raises:
        ConfigError: an unknown device, or CUDA asked for where there is none.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    text = str(device)
    try:
        dev = torch.device(text)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} was asked for but no CUDA GPU is usable here; use device='cpu' or 'auto'"
        )
    return dev


def split_list(value: str | Sequence[str] | None, *, option: str = "the list") -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (a sequence passes through, stripped); ``None`` stays.

    Raises:
        ConfigError: an item that is empty (``"a,,b"``) or listed twice, naming ``option``.
    """
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    out = [item.strip() for item in items]
    if isinstance(value, str) and out and out[-1] == "":
        out = out[:-1]  # a trailing comma is harmless
    if any(not item for item in out):
        raise ConfigError(f"{option} {value!r} has an empty item; write it as a,b,c")
    twice = sorted({item for item in out if out.count(item) > 1})
    if twice:
        raise ConfigError(f"{option} lists {twice} more than once")
    return out


def parse_layers(spec: str | Sequence[str] | None, *, option: str = "layers") -> LayerSpec:
    """A layer spec from its spellings: ``None``/``"embedding"`` (the official embedding),
    ``"all"``, ``"a,b"`` or ``["a", "b"]`` (names checked by the encoder when extracting).

    Raises:
        ConfigError: an empty spec or an empty name.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        text = spec.strip()
        if text in ("", FINAL_LAYER):
            if not text:
                raise ConfigError(f"{option} is empty; use '{FINAL_LAYER}', 'all' or a,b,c")
            return None
        if text == "all":
            return "all"
    names = split_list(spec, option=option) or []
    if not names:
        raise ConfigError(f"{option} names no layer; use '{FINAL_LAYER}', 'all' or a,b,c")
    if "all" in names and len(names) > 1:
        raise ConfigError(f"{option} {spec!r}: 'all' cannot be combined with layer names")
    return "all" if names == ["all"] else tuple(names)


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_int(name: str, value: Any, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(
            f"{name} must be an integer >= {low}{' or None' if optional else ''}, got {value!r}"
        )


@dataclass(frozen=True)
class RunSettings:
    """Everything the stages of one run share, checked once when built.

    Attributes:
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``: the encoder, the extraction and every
            analysis that computes on a device (the probes' solvers, kNN) use it.
        precision: extraction autocast precision (``"fp32"``, ``"bf16"``, ``"fp16"``).
        batch_size: records per forward pass.
        window: extraction window policy (``"official"``, ``"fit"``, ``"sliding"``).
        hop: window step in samples for ``"sliding"``.
        layers: which layers to extract (:func:`parse_layers`).
        cache_dir: embeddings and analysis results are cached here (``None``: no cache).
        seed: the seed of every analysis that does not set its own.
        ci_level: the interval level of every analysis (``None``: each analysis's own).
        n_resamples: resamples of every bootstrap (``None``: the profile's or analysis's own).
        profile: ``"full"`` (the analyzers' defaults) or ``"quick"`` (fewer resamples and seeds).
        progress: progress bars and summary lines on stderr.
        workers: threads running independent analyses at once (``None``: up to 2).

    Raises:
        ConfigError: a value out of its range, naming the setting.
    """

    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 64
    window: str = "official"
    hop: int | None = None
    layers: LayerSpec = None
    cache_dir: Path | None = None
    seed: int = 0
    ci_level: float | None = None
    n_resamples: int | None = None
    profile: str = "full"
    progress: bool = True
    workers: int | None = None

    def __post_init__(self) -> None:
        if not (self.device in ("auto", "cpu") or str(self.device).startswith("cuda")):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("window", self.window, WINDOWS)
        _check_choice("profile", self.profile, PROFILE_NAMES)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("hop", self.hop, 1, optional=True)
        _check_int("seed", self.seed, 0)
        _check_int("n_resamples", self.n_resamples, 1, optional=True)
        _check_int("workers", self.workers, 1, optional=True)
        if self.hop is not None and self.window != "sliding":
            raise ConfigError(f"hop={self.hop} only applies to window='sliding' (window is {self.window!r})")
        if self.ci_level is not None and not (
            isinstance(self.ci_level, (int, float)) and 0 < float(self.ci_level) < 1
        ):
            raise ConfigError(f"ci_level must lie strictly between 0 and 1, got {self.ci_level!r}")
        object.__setattr__(self, "layers", parse_layers(self.layers))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "settings") -> RunSettings:
        """Settings from a mapping (a study's YAML, an API call); unknown keys are refused.

        Raises:
            ConfigError: an unknown key (with the closest valid one) or a bad value.
        """
        known = [f.name for f in dataclasses.fields(cls) if f.init]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{where}: unknown setting {key!r}{hint} (valid: {', '.join(known)})")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> RunSettings:
        """A copy with ``changes`` (checked like a new one)."""
        return dataclasses.replace(self, **changes)

    def extraction(self, *, layers: LayerSpec | str = "default") -> dict[str, Any]:
        """Keyword arguments of :func:`ecgprobe.extract.extract` (``layers`` overrides the
        settings' own)."""
        return {
            "layers": self.layers if layers == "default" else layers,
            "batch_size": self.batch_size,
            "device": self.device,
            "cache_dir": self.cache_dir,
            "window": self.window,
            "hop": self.hop,
            "precision": self.precision,
            "progress": self.progress,
        }

    def for_analysis(self, accepted: set[str]) -> dict[str, Any]:
        """The run-wide settings an analysis taking the settings ``accepted`` receives by
        default: the seed and the device, and the interval level and resamples when set."""
        shared = {
            "seed": self.seed,
            "device": self.device,
            "ci_level": self.ci_level,
            "n_resamples": self.n_resamples,
        }
        return {k: v for k, v in shared.items() if k in accepted and v is not None}
