"""``torchscript`` and ``onnx``: a user's own exported model with a user-declared input contract.

The model must map the model-ready batch ``(B, n_leads, n_samples)`` (float32, leads in the
declared order, preprocessed by the declared contract) to embeddings ``(B, D)``; ``D`` is
inferred by running one dummy batch of two records. Models that return a time/token axis are
pooled by a rule the user states, never guessed: ``output_layout="BDT"`` (mean over the last
axis, conv maps) or ``"BTD"`` (mean over axis 1, tokens). A model with several outputs (a
tuple, or several ONNX outputs) needs ``output=`` (index, or ONNX output name).

Example::

    enc = create_encoder("torchscript", checkpoint="model.pt", fs=500,
                         leads="I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6", n_samples=5000,
                         normalization="zscore_lead")

- ``torchscript``: ``torch.jit.load(map_location="cpu")``; differentiable; no layers besides
  ``embedding`` (a scripted graph has no stable submodule names to hook).
- ``onnx``: onnxruntime (CPU; the CUDA execution provider when the encoder is moved to a CUDA
  device and onnxruntime has it); not differentiable; only ``embedding``.

``weights_sha256`` is the file's sha256.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ecgprobe.encoders.base import FINAL_LAYER, Encoder, InputSpec, TorchEncoder, file_sha256
from ecgprobe.encoders.checkpoint import verify_checkpoint
from ecgprobe.encoders.registry import ENCODERS
from ecgprobe.exceptions import CheckpointError, ConfigError, DependencyError

E = TypeVar("E", bound=Encoder)

__all__ = ["OnnxEncoder", "TorchScriptEncoder", "create_onnx", "create_torchscript"]

_LAYOUTS = ("BD", "BDT", "BTD")
_DUMMY_BATCH = 2
_POOLING = "as returned by the model ((B, D)); or the mean over its time/token axis per output_layout"


def _declared_spec(
    name: str,
    *,
    fs: float | None,
    leads: str | tuple[str, ...] | None,
    n_samples: int | None,
    normalization: str,
    units: str,
    baseline: str | None,
    bandpass: tuple[float | None, float | None] | None,
    notch: float | None,
) -> InputSpec:
    if fs is None or leads is None:
        raise ConfigError(
            f"{name}: declare the model's input contract: fs= (Hz) and leads= (e.g. 'I,II,III,aVR,aVL,aVF,V1,V2,"
            f"V3,V4,V5,V6'), and usually n_samples=, normalization=, units= (CLI: -E fs=500 -E leads=...)"
        )
    lead_tuple = tuple(s.strip() for s in leads.split(",")) if isinstance(leads, str) else tuple(leads)
    return InputSpec(
        fs=float(fs),
        leads=lead_tuple,
        n_samples=None if n_samples is None else int(n_samples),
        baseline=baseline,  # type: ignore[arg-type]
        bandpass=None if bandpass is None else tuple(bandpass),  # type: ignore[arg-type]
        notch=notch,
        normalization=normalization,
        units=units,
        notes=f"declared by the user for their exported {name} model",
    )


def _select_output(name: str, out: Any, output: int | str | None) -> Any:
    if isinstance(out, (tuple, list)):
        if output is None:
            if len(out) == 1:
                return out[0]
            raise ConfigError(
                f"{name}: the model returns {len(out)} outputs; pass output=<index> to pick the embedding"
            )
        if not isinstance(output, int) or not -len(out) <= output < len(out):
            raise ConfigError(
                f"{name}: output={output!r} is not an index among the model's {len(out)} outputs"
            )
        return out[output]
    return out


def _to_embedding(name: str, out: torch.Tensor, layout: str | None) -> torch.Tensor:
    """Apply the declared output layout: (B, D) as is, (B, D, T) / (B, T, D) mean-pooled."""
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"{name}: the model returned {type(out).__name__}, expected a tensor (B, D)")
    if out.ndim == 2 and layout in (None, "BD"):
        return out
    if out.ndim == 3:
        if layout == "BDT":
            return out.mean(dim=-1)
        if layout == "BTD":
            return out.mean(dim=1)
        raise ConfigError(
            f"{name}: the model returns a 3-D output {tuple(out.shape)}; say which axis is time: "
            "output_layout='BDT' (batch, dim, time: mean over the last axis) or 'BTD' (batch, tokens, dim: "
            "mean over axis 1)"
        )
    raise ConfigError(
        f"{name}: the model returns shape {tuple(out.shape)} with output_layout={layout!r}; expected (B, D), "
        "or (B, D, T)/(B, T, D) with output_layout='BDT'/'BTD'"
    )


def _gist(exc: BaseException) -> str:
    """The informative line of an error (TorchScript puts the real cause on the last line)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if "TorchScript interpreter" in lines[0] else lines[0]


def _wrap(
    cls: type[E], model: Any, path: Path, name: str, spec: InputSpec, output: Any, output_layout: str | None
) -> E:
    """The encoder around ``model`` (a loaded module, or the path onnxruntime opens), its
    embedding size found by one forward pass on a dummy batch."""
    enc = cls(
        model,
        output=output,
        output_layout=output_layout,
        name=name,
        spec=spec,
        embed_dim=0,
        pooling=_POOLING,
        weights_sha256=file_sha256(path),
        options={"spec": spec.to_dict(), "output": output, "output_layout": output_layout},
    )
    enc.embed_dim = _infer_dim(name, spec, enc._forward, path)
    return enc


def _check_layout(name: str, layout: str | None) -> None:
    if layout is not None and layout not in _LAYOUTS:
        raise ConfigError(f"{name}: output_layout={layout!r}; choose from {list(_LAYOUTS)} or leave it unset")


def _infer_dim(name: str, spec: InputSpec, run: Callable[[torch.Tensor], torch.Tensor], path: Path) -> int:
    """Run one dummy batch (zeros are avoided: some models divide by a per-record std)."""
    n = spec.n_samples if spec.n_samples is not None else int(round(10 * spec.fs))
    dummy = torch.randn(_DUMMY_BATCH, spec.n_leads, n, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            emb = run(dummy)
    except ConfigError:
        raise
    except Exception as exc:  # the model's own error: a wrong rank, lead count or length
        first = _gist(exc)
        raise CheckpointError(
            f"{name} model {path} failed on a dummy batch of shape {tuple(dummy.shape)} (batch, leads, samples) "
            f"built from the declared contract: {type(exc).__name__}: {first[:300]}. The model must take "
            "(B, n_leads, n_samples) float32; check leads=, n_samples= and that it was exported for a 3-D input."
        ) from None
    if emb.shape[0] != _DUMMY_BATCH:
        raise CheckpointError(
            f"{name} model {path} returned batch size {emb.shape[0]} for a batch of {_DUMMY_BATCH}; "
            "export it with a dynamic batch axis"
        )
    return int(emb.shape[1])


# --------------------------------------------------------------------------- TorchScript
class TorchScriptEncoder(TorchEncoder):
    """A TorchScript module with a declared contract; layers: ``embedding`` only."""

    family = "torchscript"

    def __init__(self, module: torch.nn.Module, *, output: int | None, output_layout: str | None, **kw: Any):
        super().__init__(module, **kw)
        self._output = output
        self._layout = output_layout

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return _to_embedding(self.name, _select_output(self.name, self.module(x), self._output), self._layout)


def _load_torchscript(path: Path) -> torch.nn.Module:
    if not path.is_file():
        raise CheckpointError(f"torchscript model {path} does not exist (or is a folder); pass the .pt file")
    if zipfile.is_zipfile(path):  # TorchScript archives are zip files: check every member's CRC first
        verify_checkpoint(path, who="torchscript model")
    try:
        with warnings.catch_warnings():
            # torch marks TorchScript deprecated in favour of torch.export, but still loads it
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        first = _gist(exc)
        raise CheckpointError(
            f"{path} is not a TorchScript archive ({first[:200]}). Export your model with "
            "torch.jit.trace(model, example).save(path) or torch.jit.script; for a plain state dict use the "
            "model's own encoder family"
        ) from None


def _test_file(path: str | Path, name: str) -> Path:
    """``path`` itself when it names a file (has a suffix), else ``path/name`` (folder created)."""
    p = Path(path)
    if p.suffix and not p.is_dir():
        p.parent.mkdir(parents=True, exist_ok=True)
        return p
    p.mkdir(parents=True, exist_ok=True)
    return p / name


def _test_net(seed: int) -> torch.nn.Module:
    """(B, 12, n) -> (B, 8): a seeded conv, ReLU and global average pooling."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv1d(12, 8, 7, stride=2),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool1d(1),
            torch.nn.Flatten(),
        ).eval()


def _make_torchscript_test(path: Path, seed: int) -> Path:
    """A small traced CNN on (B, 12, 250) -> (B, 8), for the conformance tests."""
    net = _test_net(seed)
    out = _test_file(path, "model_test.torchscript.pt")
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # torch.jit.trace is deprecated upstream, still supported
        torch.jit.trace(net, torch.zeros(2, 12, 250)).save(str(out))
    return out


_TEST_OPTIONS = {"fs": 100, "leads": "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6", "n_samples": 250}
_CONTRACT_HELP = (
    "Options declare the input contract: fs, leads (comma-separated, model order), n_samples (None: any "
    "length), normalization, units, baseline, bandpass, notch; output (index of the embedding among "
    "several outputs), output_layout (BD, BDT or BTD for 3-D outputs)."
)
#: The card fields both exported formats share: the user's own model, its contract declared by options.
_EXPORTED_CARD: dict[str, Any] = {
    "needs_checkpoint": True,
    "embed_dim": None,
    "spec": None,
    "pooling": _POOLING,
    "layers": (FINAL_LAYER,),
    "download": "your own exported model",
    "licence": "yours",
    "test_options": _TEST_OPTIONS,
}


@ENCODERS.register(
    "torchscript",
    family="torchscript",
    checkpoint_format="a TorchScript archive (torch.jit.trace/script(...).save) mapping (B, L, n) -> (B, D)",
    details="A user's TorchScript model with a user-declared input contract. " + _CONTRACT_HELP,
    make_test_checkpoint=_make_torchscript_test,
    **_EXPORTED_CARD,
)
def create_torchscript(
    checkpoint: str | Path,
    *,
    fs: float | None = None,
    leads: str | tuple[str, ...] | None = None,
    n_samples: int | None = None,
    normalization: str = "none",
    units: str = "mV",
    baseline: str | None = None,
    bandpass: tuple[float | None, float | None] | None = None,
    notch: float | None = None,
    output: int | None = None,
    output_layout: str | None = None,
) -> TorchScriptEncoder:
    """Wrap a TorchScript model with a declared input contract.

    Args:
        checkpoint: the TorchScript archive.
        fs, leads, n_samples, normalization, units, baseline, bandpass, notch: the input contract
            (:class:`~ecgprobe.encoders.base.InputSpec`); ``fs`` and ``leads`` are required.
        output: index of the embedding when the model returns a tuple.
        output_layout: ``"BDT"`` or ``"BTD"`` for models returning a time/token axis.

    Raises:
        ConfigError: contract not declared, or an output that needs ``output``/``output_layout``.
        CheckpointError: missing file, not a TorchScript archive, or a model that fails on a
            (B, n_leads, n_samples) batch.

    Example:
        >>> enc = create_encoder("torchscript", checkpoint="model.pt", fs=500, leads="I,II",
        ...                      n_samples=5000, normalization="zscore_lead")  # doctest: +SKIP
    """
    name = "torchscript"
    _check_layout(name, output_layout)
    spec = _declared_spec(
        name, fs=fs, leads=leads, n_samples=n_samples, normalization=normalization, units=units,
        baseline=baseline, bandpass=bandpass, notch=notch,
    )  # fmt: skip
    path = Path(checkpoint).expanduser()
    module = _load_torchscript(path)
    return _wrap(TorchScriptEncoder, module, path, name, spec, output, output_layout)


# --------------------------------------------------------------------------------- ONNX
class OnnxEncoder(Encoder):
    """An ONNX model run by onnxruntime with a declared contract; not differentiable."""

    family = "onnx"
    differentiable = False

    def __init__(self, path: Path, *, output: int | str | None, output_layout: str | None, **kw: Any) -> None:
        super().__init__(**kw)
        self._path = path
        self._output = output
        self._layout = output_layout
        self._cuda = False
        self._session = _onnx_session(path, cuda=False)
        self._batch = _check_fixed_dims(self._session, path, self.spec)

    def to(self, device: str | torch.device) -> OnnxEncoder:
        super().to(device)
        if (self.device.type == "cuda") != self._cuda:  # a new session only when the provider changes
            self._cuda = self.device.type == "cuda"
            self._session = _onnx_session(self._path, cuda=self._cuda)
        return self

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._batch is None or len(x) == self._batch:
            return self._run_session(x)
        # exported with a fixed batch size: run it that many records at a time, the last chunk
        # padded with copies of its last record (not zeros: some models divide by a record's std)
        chunks = []
        for start in range(0, len(x), self._batch):
            part = x[start : start + self._batch]
            pad = self._batch - len(part)
            full = torch.cat([part, part[-1:].expand(pad, *part.shape[1:])]) if pad else part
            chunks.append(self._run_session(full)[: len(part)])
        return torch.cat(chunks)

    def _run_session(self, x: torch.Tensor) -> torch.Tensor:
        sess = self._session
        feed = {sess.get_inputs()[0].name: x.detach().to("cpu", torch.float32).contiguous().numpy()}
        outs = sess.run(None, feed)
        names = [o.name for o in sess.get_outputs()]
        if isinstance(self._output, str):
            if self._output not in names:
                raise ConfigError(
                    f"onnx: output={self._output!r} is not an output of the model; outputs: {names}"
                )
            out = outs[names.index(self._output)]
        else:
            out = _select_output("onnx", list(outs), self._output)
        return _to_embedding("onnx", torch.from_numpy(np.asarray(out, dtype=np.float32)), self._layout).to(
            self.device
        )


def _onnx_session(path: Path, *, cuda: bool) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise DependencyError(
            'the onnx encoder needs onnxruntime: pip install "ecgprobe[onnx]" (GPU: onnxruntime-gpu)'
        ) from None
    if not path.is_file():
        raise CheckpointError(f"onnx model {path} does not exist (or is a folder); pass the .onnx file")
    providers = ["CPUExecutionProvider"]
    if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: onnxruntime's warnings go to stderr otherwise
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        first = _gist(exc)
        raise CheckpointError(
            f"{path} is not a loadable ONNX model ({type(exc).__name__}: {first[:200]}); export it with "
            "torch.onnx.export(model, example, path, dynamic_axes={'x': {0: 'batch'}})"
        ) from None
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise CheckpointError(
            f"onnx model {path} has {len(inputs)} inputs {[i.name for i in inputs]}; ecgprobe feeds one "
            "(B, n_leads, n_samples) tensor"
        )
    if len(inputs[0].shape) != 3:
        raise CheckpointError(
            f"onnx model {path} takes a rank-{len(inputs[0].shape)} input {inputs[0].shape}; ecgprobe feeds "
            "(B, n_leads, n_samples): export the model with a 3-D input"
        )
    return sess


def _check_fixed_dims(sess: Any, path: Path, spec: InputSpec) -> int | None:
    """The model's fixed batch size (``None`` when the batch axis is dynamic), after refusing
    fixed lead/sample axes that contradict the declared contract.

    Raises:
        CheckpointError: a fixed axis that differs from ``leads=`` or ``n_samples=``.
    """
    shape = list(sess.get_inputs()[0].shape)
    for axis, option, declared in ((1, "leads", spec.n_leads), (2, "n_samples", spec.n_samples)):
        fixed = shape[axis] if isinstance(shape[axis], int) else None
        if fixed is not None and fixed != declared:
            raise CheckpointError(
                f"onnx model {path} was exported for input shape {shape} (batch, leads, samples) but the declared "
                f"contract gives {declared if declared is not None else 'any length'} for axis {axis} ({option}=); "
                f"declare {fixed} {option} to match the export (CLI: -E {option}=...)"
            )
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    if batch is not None:
        warnings.warn(
            f"onnx model {path} was exported with a fixed batch size of {batch}: ecgprobe runs it {batch} "
            "record(s) at a time, which is slower; re-export it with a dynamic batch axis "
            "(torch.onnx.export(..., dynamic_axes={'x': {0: 'batch'}})) for full speed",
            UserWarning,
            stacklevel=2,
        )
    return batch


def _make_onnx_test(path: Path, seed: int) -> Path:
    """The torchscript test CNN exported to ONNX with a dynamic batch axis."""
    net = _test_net(seed)
    out = _test_file(path, "model_test.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            net, (torch.zeros(2, 12, 250),), str(out), input_names=["x"], output_names=["embedding"],
            dynamic_axes={"x": {0: "batch"}, "embedding": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    return out


@ENCODERS.register(
    "onnx",
    family="onnx",
    checkpoint_format="an ONNX model with one input (B, L, n) and an output (B, D) (torch.onnx.export)",
    details="A user's ONNX model run with onnxruntime, with a user-declared input contract. "
    + _CONTRACT_HELP,
    make_test_checkpoint=_make_onnx_test,
    **_EXPORTED_CARD,
)
def create_onnx(
    checkpoint: str | Path,
    *,
    fs: float | None = None,
    leads: str | tuple[str, ...] | None = None,
    n_samples: int | None = None,
    normalization: str = "none",
    units: str = "mV",
    baseline: str | None = None,
    bandpass: tuple[float | None, float | None] | None = None,
    notch: float | None = None,
    output: int | str | None = None,
    output_layout: str | None = None,
) -> OnnxEncoder:
    """Wrap an ONNX model with a declared input contract (see :func:`create_torchscript`).

    Raises:
        ConfigError: contract not declared, or an output that needs ``output``/``output_layout``.
        CheckpointError: missing file, not an ONNX model, an input that is not 3-D, or a model
            that fails on a (B, n_leads, n_samples) batch.
        DependencyError: onnxruntime is not installed.
    """
    name = "onnx"
    _check_layout(name, output_layout)
    spec = _declared_spec(
        name, fs=fs, leads=leads, n_samples=n_samples, normalization=normalization, units=units,
        baseline=baseline, bandpass=bandpass, notch=notch,
    )  # fmt: skip
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CheckpointError(f"onnx model {path} does not exist (or is a folder); pass the .onnx file")
    return _wrap(OnnxEncoder, path, path, name, spec, output, output_layout)
