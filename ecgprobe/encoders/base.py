"""The encoder API: an input contract (:class:`InputSpec`) travelling with every model, and the
:class:`Encoder` wrapper that maps model-ready tensors to pooled embeddings, per layer.

An encoder is created from the registry (``ecgprobe.create_encoder(name, checkpoint=...)``).
Preprocessing is derived from its spec (:meth:`Encoder.preprocess`): leads selected/derived,
resampled, filtered, cut to the model's window and normalised. The model-ready tensor is always
``(batch, n_leads, n_samples)`` float32; any model-specific rearrangement (e.g. leads
concatenated into one sequence) happens inside the model.

Subclasses implement :meth:`Encoder._forward` (the final embedding) and
:meth:`Encoder._layer_modules` (named submodules whose outputs can be pooled into per-layer
embeddings); forward hooks collect several layers in one pass and are always removed.

Token sequences (for the attentive probe): a family that exposes one names, in
:meth:`Encoder.sequence_layer`, the layer whose *unpooled* output is the sequence its official
embedding pools, and reads that output as ``(B, T, D)`` in :meth:`Encoder._sequence` (the
default reads a conv map ``(B, C, T)`` as ``T`` tokens of ``C`` channels; token families read
``(B, T, C)`` as it is). :meth:`Encoder.embed_tokens` averages the tokens along time down to at
most ``max_tokens`` (:func:`pool_tokens`) so a cached sequence stays bounded.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ecgprobe.data import preprocess as pp
from ecgprobe.data.leads import canonical_leads
from ecgprobe.encoders._tokens import pool_tokens
from ecgprobe.encoders.crops import RecordCrops
from ecgprobe.exceptions import ConfigError, IncompatibleInputError
from ecgprobe.settings import FINAL_LAYER, resolve_device

if TYPE_CHECKING:
    from ecgprobe.encoders.checkpoint import LoadReport

__all__ = [
    "FINAL_LAYER",
    "Encoder",
    "InputSpec",
    "RecordCrops",
    "TorchEncoder",
    "file_sha256",
    "pool_tokens",
    "resolve_device",
]

_UNIT_SCALE = {"mV": 1.0, "uV": 1000.0, "V": 1e-3}


@dataclass(frozen=True)
class InputSpec:
    """A model's preprocessing contract, applied in this order.

    Attributes:
        fs: sampling rate the model expects, Hz (records are resampled to it).
        leads: the leads, in the model's order (III, aVR, aVL, aVF are derived from I and II
            when missing; other missing leads are refused).
        n_samples: the model's native window length in samples, or ``None`` for models that
            take any length.
        baseline: baseline-wander removal (``"median"`` or ``"highpass"``) or ``None``.
        bandpass: ``(low, high)`` Hz of a zero-phase Butterworth filter (either may be ``None``),
            or ``None`` for no filter.
        filter_order: order of that Butterworth filter.
        notch: power-line notch frequency in Hz, or ``None``.
        normalization: per-window normalisation (:func:`ecgprobe.data.preprocess.normalize`).
        units: amplitude units the model expects (``"mV"``, ``"uV"``, ``"V"``); applied after
            normalisation only when ``normalization == "none"``.
        notes: free text describing the source of the contract (official code, paper).
        clip_mv: amplitude limit in mV applied to the records at their own rate, before any
            other step (``np.clip(x, -clip_mv, clip_mv)``), or ``None``.
        crops: the official record-level protocol (:class:`RecordCrops`), which windows
            ``extract(window="official")`` embeds and averages.
    """

    fs: float
    leads: tuple[str, ...]
    n_samples: int | None
    baseline: Literal["median", "highpass"] | None = None
    bandpass: tuple[float | None, float | None] | None = None
    filter_order: int = 4
    notch: float | None = None
    normalization: str = "none"
    units: str = "mV"
    notes: str = ""
    clip_mv: float | None = None
    crops: RecordCrops = field(default_factory=RecordCrops)

    def __post_init__(self) -> None:
        object.__setattr__(self, "leads", canonical_leads(list(self.leads)))
        if isinstance(self.crops, dict):
            object.__setattr__(self, "crops", RecordCrops(**self.crops))
        if self.clip_mv is not None and not self.clip_mv > 0:
            raise ConfigError(f"InputSpec.clip_mv must be > 0 mV or None, got {self.clip_mv}")
        object.__setattr__(self, "fs", float(self.fs))
        if self.bandpass is not None:
            object.__setattr__(self, "bandpass", tuple(self.bandpass))
        if self.normalization not in pp.NORMALISATIONS:
            raise ConfigError(
                f"InputSpec.normalization {self.normalization!r} not in {list(pp.NORMALISATIONS)}"
            )
        if self.units not in _UNIT_SCALE:
            raise ConfigError(f"InputSpec.units {self.units!r} not in {list(_UNIT_SCALE)}")
        if self.n_samples is not None and self.n_samples < 1:
            raise ConfigError(f"InputSpec.n_samples must be >= 1 or None, got {self.n_samples}")

    @property
    def n_leads(self) -> int:
        """Number of input leads."""
        return len(self.leads)

    @property
    def window_s(self) -> float | None:
        """Native window length in seconds (``None``: any length)."""
        return None if self.n_samples is None else self.n_samples / self.fs

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (part of every cache key and result's provenance); ``clip_mv``
        and ``crops`` appear only when set, so contracts without them keep their earlier keys."""
        d = asdict(self)
        d["leads"] = list(self.leads)
        d["bandpass"] = list(self.bandpass) if self.bandpass is not None else None
        if self.clip_mv is None:
            del d["clip_mv"]
        if self.crops == RecordCrops():
            del d["crops"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["leads"] = tuple(d["leads"])
        if d.get("bandpass") is not None:
            d["bandpass"] = tuple(d["bandpass"])
        return cls(**d)

    def describe(self) -> str:
        """One line: ``500 Hz, 10 s (5000 samples), 12 leads I..V6, band-pass 0.5-40 Hz, zscore_lead``."""
        win = "any length" if self.n_samples is None else f"{self.window_s:g} s ({self.n_samples} samples)"
        parts = [f"{self.fs:g} Hz", win, f"{self.n_leads} leads {' '.join(self.leads)}"]
        if self.baseline:
            parts.append(f"baseline removal ({self.baseline})")
        if self.bandpass:
            lo, hi = self.bandpass
            parts.append(
                f"band-pass {lo if lo is not None else 0:g}-{hi if hi is not None else 'Nyquist'} Hz"
            )
        if self.notch:
            parts.append(f"notch {self.notch:g} Hz")
        parts.append(f"normalisation {self.normalization}")
        if self.normalization == "none":
            parts.append(f"units {self.units}")
        if self.clip_mv is not None:
            parts.insert(0, f"clipped to +/-{self.clip_mv:g} mV")
        if self.crops.rule != "first":
            parts.append(f"record level: {self.crops.describe(self.n_samples, self.fs)}")
        return ", ".join(parts)


def file_sha256(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """sha256 of a file (or of all files of a folder, in sorted order)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with f.open("rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


class Encoder(ABC):
    """An ECG encoder: input contract, preprocessing, pooled embeddings per layer.

    Attributes:
        name: registry name (``"random-resnet1d"``, ``"ecgfounder"``, ...).
        spec: the input contract.
        embed_dim: dimension of the official embedding (layer :data:`FINAL_LAYER`).
        pooling: how token/time outputs are pooled into one vector (stated per family).
        weights_sha256: sha256 of the checkpoint file, or a digest of the generated weights.
        options: the creation options (part of the provenance).
        differentiable: whether gradients flow from the embedding to the input (attributions).
    """

    family: ClassVar[str] = "custom"
    differentiable: ClassVar[bool] = True

    def __init__(
        self,
        *,
        name: str,
        spec: InputSpec,
        embed_dim: int,
        pooling: str,
        weights_sha256: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.embed_dim = int(embed_dim)
        self.pooling = pooling
        self.weights_sha256 = weights_sha256
        self.options = dict(options or {})
        self.device = torch.device("cpu")
        self._token_dim: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, embed_dim={self.embed_dim}, spec=<{self.spec.describe()}>)"

    # ------------------------------------------------------------ contract
    def layer_names(self) -> list[str]:
        """Layers whose pooled outputs can be extracted, shallow to deep; the last is the embedding."""
        return [*self._layer_modules().keys(), FINAL_LAYER]

    def identity(self) -> dict[str, Any]:
        """What determines this encoder's outputs: name, family, options, weights digest, spec."""
        return {
            "encoder": self.name,
            "family": self.family,
            "options": self.options,
            "weights_sha256": self.weights_sha256,
            "spec": self.spec.to_dict(),
            "embed_dim": self.embed_dim,
            "pooling": self.pooling,
        }

    def to(self, device: str | torch.device) -> Encoder:
        """Move the encoder to ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``); returns self."""
        self.device = resolve_device(device)
        return self

    # -------------------------------------------------------- preprocessing
    def preprocess(
        self,
        signals: np.ndarray,
        fs: float,
        leads: Sequence[str],
        *,
        window: Literal["fit", "sliding", "official"] = "fit",
        hop: int | None = None,
    ) -> np.ndarray:
        """Raw records ``(N, L, T)`` in mV -> model-ready ``(N, L', n)`` float32 (``"fit"``) or
        ``(N, W, L', n)`` windows (``"sliding"``, ``"official"``), by this encoder's input contract.

        The shape, ``window`` and ``hop`` are checked, the contract's leads selected (limb leads
        derived where possible) and its amplitude clip applied here; the rest is
        :meth:`_prepare`, which families with an official pipeline of their own override.
        ``"official"`` is the contract's record-level protocol (``spec.crops``): the windows it
        names, cut by the family's own ``"sliding"`` path.

        Raises:
            ConfigError: signals not ``(records, leads, samples)``, an unknown ``window``, a
                ``hop`` below one sample or a ``hop`` given with ``"official"``.
            IncompatibleInputError: leads missing and not derivable, or a sampling rate so low
                that the model's band cannot be represented.
        """
        x = np.asarray(signals, dtype=np.float32)
        if x.ndim != 3:
            raise ConfigError(f"signals must be (records, leads, samples), got shape {x.shape}")
        if window not in ("fit", "sliding", "official"):
            raise ConfigError(f"window must be 'fit', 'sliding' or 'official', got {window!r}")
        if window == "sliding" and hop is not None and hop < 1:
            raise ConfigError(f"hop must be >= 1 sample, got {hop}")
        if window == "official" and hop is not None:
            raise ConfigError(
                "hop applies to window='sliding'; window='official' takes its windows from the contract"
            )
        x = pp.select_leads(x, leads, self.spec.leads)
        if self.spec.clip_mv is not None:
            x = np.clip(x, -self.spec.clip_mv, self.spec.clip_mv)
        if window != "official":
            return self._prepare(x, float(fs), window, hop)
        return self._official_windows(x, float(fs))

    def _official_windows(self, x: np.ndarray, fs: float) -> np.ndarray:
        """The windows of ``spec.crops`` ``(N, W, L', n)``: their starts form ``range(0, ., step)``,
        so they are the family's ``"sliding"`` windows with that hop (``"chunks"``: its default
        non-overlapping hop, cut at whatever rate the family windows), first ``W`` kept."""
        spec = self.spec
        t_model = int(x.shape[-1] * spec.fs / fs)  # the length the resamplers produce
        starts = [0] if spec.n_samples is None else spec.crops.starts(t_model, spec.n_samples)
        if len(starts) == 1:
            return self._prepare(x, fs, "fit", None)[:, None]
        hop = None if spec.crops.rule == "chunks" else starts[1] - starts[0]
        return self._prepare(x, fs, "sliding", hop)[:, : len(starts)]

    def _prepare(self, x: np.ndarray, fs: float, window: str, hop: int | None) -> np.ndarray:
        """The generic chain on lead-selected records ``(N, L', T)`` at ``fs``: resampled ->
        baseline removal -> band-pass -> notch (all on the whole record) -> cut to the native
        window (``"fit"``: first ``n_samples``, zero-padded if shorter; ``"sliding"``: windows
        every ``hop`` samples, default no overlap, a partial tail window zero-padded) ->
        per-window normalisation -> units."""
        spec = self.spec
        if spec.bandpass and spec.bandpass[1] is not None and spec.bandpass[1] >= fs / 2:
            raise IncompatibleInputError(
                f"{self.name} filters up to {spec.bandpass[1]:g} Hz but the records are sampled at {fs:g} Hz "
                f"(Nyquist {fs / 2:g} Hz); use records sampled at >= {2 * spec.bandpass[1]:g} Hz"
            )
        x = pp.resample(x, fs, spec.fs)
        if spec.baseline:
            x = pp.remove_baseline(x, spec.fs, method=spec.baseline)
        if spec.bandpass:
            x = pp.bandpass(x, spec.fs, spec.bandpass[0], spec.bandpass[1], order=spec.filter_order)
        if spec.notch:
            x = pp.notch(x, spec.fs, spec.notch)
        if spec.n_samples is not None:
            if window == "sliding":
                x = pp.sliding_windows(x, spec.n_samples, hop=hop, pad_last=True)
            else:
                x = pp.fit_length(x, spec.n_samples)
        return self._normalise(x)

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        """Per-window normalisation and unit scaling (override for model-specific steps)."""
        if self.spec.normalization != "none":
            return pp.normalize(x, self.spec.normalization)
        scale = _UNIT_SCALE[self.spec.units]
        return x * np.float32(scale) if scale != 1.0 else x

    # ------------------------------------------------------------ embedding
    @abstractmethod
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model-ready batch ``(B, L, n)`` on :attr:`device` -> official embedding ``(B, embed_dim)``."""

    def _layer_modules(self) -> dict[str, nn.Module]:
        """Named submodules exposed as layers (shallow to deep); empty when none."""
        return {}

    def _pool(self, layer: str, output: Any) -> torch.Tensor:
        """Pool one layer's output into ``(B, D)``: the mean over the last axis for conv maps
        ``(B, C, T)``; families with token outputs ``(B, T, C)`` override this."""
        out = output[0] if isinstance(output, (tuple, list)) else output
        if out.ndim == 3:
            return out.mean(dim=-1)
        if out.ndim == 2:
            return out
        return out.flatten(1)

    def sequence_layer(self) -> str | None:
        """The layer whose unpooled output is this encoder's token sequence (the one its
        embedding pools), or ``None`` when the family exposes none (the default)."""
        return None

    def _sequence(self, layer: str, output: Any) -> torch.Tensor:
        """One layer's output as a token sequence ``(B, T, D)``: a conv map ``(B, C, T)`` is read
        as ``T`` time steps of ``C`` channels; families with token outputs override this."""
        out = output[0] if isinstance(output, (tuple, list)) else output
        if out.ndim != 3:
            raise ConfigError(
                f"{self.name} layer {layer!r} outputs shape {tuple(out.shape)}, not a sequence; "
                f"use its sequence layer {self.sequence_layer()!r}"
            )
        return out.transpose(1, 2)

    def embed_tokens(
        self, x: torch.Tensor | np.ndarray, layer: str | None = None, *, max_tokens: int = 32
    ) -> torch.Tensor:
        """Token sequence ``(B, T', D)`` of a model-ready batch at ``layer`` (default
        :meth:`sequence_layer`), averaged along time to ``T' <= max_tokens`` tokens.

        Raises:
            ConfigError: the encoder exposes no sequence, or ``layer`` is unknown.

        Example:
            >>> import ecgprobe, torch
            >>> enc = ecgprobe.create_encoder("tiny-test", device="cpu")
            >>> enc.embed_tokens(torch.zeros(2, 12, 250), max_tokens=16).shape
            torch.Size([2, 16, 8])
        """
        name = layer or self.sequence_layer()
        if name is None:
            raise ConfigError(f"{self.name} exposes no token sequence (see ecgprobe probe --kind attentive)")
        flat = self.embed_layers(x, [name], max_tokens=max_tokens)[name]
        return flat.reshape(flat.shape[0], -1, self._token_dim[name])

    def embed(self, x: torch.Tensor | np.ndarray, layer: str | None = None) -> torch.Tensor:
        """Pooled embedding ``(B, D)`` of a model-ready batch, for ``layer`` (default: the embedding)."""
        return self.embed_layers(x, [layer or FINAL_LAYER])[layer or FINAL_LAYER]

    def embed_layers(
        self, x: torch.Tensor | np.ndarray, layers: Sequence[str], *, max_tokens: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Pooled outputs of several layers in one forward pass (forward hooks, always removed).

        With ``max_tokens``, each layer's output is its token sequence instead (:meth:`_sequence`,
        averaged to at most ``max_tokens`` tokens by :func:`pool_tokens`), flattened to
        ``(B, T' * D)`` (token-major) so that it caches like a pooled embedding; ``D`` per layer
        is kept in ``self._token_dim``.

        Raises:
            ConfigError: naming unknown layers and listing the available ones; ``max_tokens``
                with the pooled final embedding or below 1.
        """
        xt = torch.as_tensor(x, dtype=torch.float32)
        if xt.device != self.device:
            xt = xt.to(self.device)
        want = list(dict.fromkeys(layers))
        modules = self._layer_modules()
        unknown = [name for name in want if name != FINAL_LAYER and name not in modules]
        if unknown:
            raise ConfigError(f"{self.name} has no layers {unknown}; its layers are {self.layer_names()}")
        if max_tokens is not None and (FINAL_LAYER in want or int(max_tokens) < 1):
            raise ConfigError(
                f"token sequences come from a named layer with max_tokens >= 1 (got layers {want}, "
                f"max_tokens={max_tokens}); {self.name}'s sequence layer is {self.sequence_layer()!r}"
            )
        captured: dict[str, torch.Tensor] = {}
        with self._hooks({n: modules[n] for n in want if n != FINAL_LAYER}, captured, max_tokens):
            final = self._forward(xt)
        if FINAL_LAYER in want:
            captured[FINAL_LAYER] = final
        return {name: captured[name] for name in want}

    @contextmanager
    def _hooks(
        self, modules: dict[str, nn.Module], captured: dict[str, torch.Tensor], max_tokens: int | None = None
    ) -> Iterator[None]:
        handles = []

        def make(name: str):
            def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                if max_tokens is None:
                    captured[name] = self._pool(name, output)
                    return
                seq = pool_tokens(self._sequence(name, output), int(max_tokens))
                self._token_dim[name] = int(seq.shape[-1])
                captured[name] = seq.flatten(1)

            return hook

        try:
            for name, module in modules.items():
                handles.append(module.register_forward_hook(make(name)))
            yield
        finally:
            for h in handles:
                h.remove()


class TorchEncoder(Encoder):
    """An encoder wrapping a ``torch.nn.Module`` whose ``forward`` returns the embedding.

    Args:
        module: the network; ``module(x)`` maps ``(B, L, n)`` to ``(B, embed_dim)``.
        layers: named submodules of ``module`` to expose as layers (shallow to deep).
        load_report: what :func:`~ecgprobe.encoders.checkpoint.load_strict` dropped when it loaded
            the published weights (kept as ``self.load_report``), or ``None``.
        **kwargs: see :class:`Encoder`.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        layers: dict[str, nn.Module] | None = None,
        load_report: LoadReport | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.module = module.eval()
        self._layers = dict(layers or {})
        self.load_report = load_report

    def to(self, device: str | torch.device) -> TorchEncoder:
        super().to(device)
        self.module.to(self.device)
        return self

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def _layer_modules(self) -> dict[str, nn.Module]:
        return self._layers

    def parameters_sha256(self) -> str:
        """Digest of the module's parameters and buffers (for generated, not loaded, weights)."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


def spec_digest(spec: InputSpec) -> str:
    """Short digest of a spec (for file names and messages)."""
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
