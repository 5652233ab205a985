"""One conformance test for every registered encoder (scikit-learn's estimator checks, timm's
model tests): families added later are checked by the same contract without a new test.

For each encoder: it is created (from the family's registered ``make_test_checkpoint`` when it
needs weights; skipped with the reason when an optional dependency is missing), then

- ``spec`` is an InputSpec and matches the registration; ``layer_names()`` ends with ``embedding``;
- ``preprocess`` of synthetic records at the contract's rate and at another rate gives
  ``(N, n_leads, n_samples)`` finite float32, and two sines given at the native rate and at 2x
  and 5x that rate give the same model input (the records are resampled, not just cut);
- ``embed`` gives ``(N, embed_dim)`` finite, deterministically; ``embed_layers`` gives a finite
  2-D output per layer, its ``embedding`` equal to ``embed``'s, and leaves no forward hook
  behind, even when the forward pass fails;
- gradients reach the input of differentiable encoders; ``identity()`` is JSON-serialisable;
- a checkpoint with one key removed (or a truncated file, for formats without keys) raises
  CheckpointError naming the problem.

Two records per batch keep the full-size zoo models affordable on CPU.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ecgprobe
from ecgprobe.data.leads import LEADS_12
from ecgprobe.encoders import (
    FINAL_LAYER,
    Encoder,
    EncoderCard,
    InputSpec,
    TorchEncoder,
    create_encoder,
    encoder_info,
    list_encoders,
)
from ecgprobe.encoders.checkpoint import load_checkpoint
from ecgprobe.exceptions import CheckpointError, DependencyError

N = 2


def _create(name: str, tmp_path: Path, **extra: Any):
    """The encoder as a user would create it (test weights where it needs weights), and the
    test checkpoint path when the family registers one."""
    card = encoder_info(name)
    options = dict(card.test_options)
    make = card.make_test_checkpoint
    try:
        # a fresh path: families write a file there or a folder at it (both conventions exist)
        ckpt = make(tmp_path / "checkpoint", 0) if make is not None else None
        if card.needs_checkpoint:
            if ckpt is None:
                pytest.fail(f"{name} needs a checkpoint but registers no make_test_checkpoint(path, seed)")
            enc = create_encoder(name, checkpoint=ckpt, device="cpu", **options, **extra)
        else:
            enc = create_encoder(name, device="cpu", **options, **extra)
    except DependencyError as exc:
        pytest.skip(f"{name}: optional dependency missing: {exc}")
    return enc, ckpt, options


def _records(spec: InputSpec, fs: float) -> tuple[np.ndarray, tuple[str, ...]]:
    """Two synthetic 12-lead records at ``fs``, as long as the contract's window (10 s if any)."""
    if not set(spec.leads) <= set(LEADS_12):
        pytest.skip(f"contract leads {spec.leads} are not all standard leads; the synthetic records have 12")
    duration = spec.window_s if spec.window_s is not None else 10.0
    rs = ecgprobe.load_dataset("synthetic", n_records=N, fs=fs, duration_s=duration, seed=5)
    return rs.signals, rs.leads


def _other_rate(spec: InputSpec) -> float:
    """A second sampling rate, not a multiple of the contract's, above twice its band edge."""
    high = spec.bandpass[1] if spec.bandpass and spec.bandpass[1] else 0.0
    for fs in (360.0, 257.0, 1000.0):
        if fs != spec.fs and fs > 2 * high:
            return fs
    return 2 * spec.fs + 1


def _torch_modules(enc) -> list[torch.nn.Module]:
    return list(enc.module.modules()) if isinstance(enc, TorchEncoder) else []


def _hooks_left(enc) -> list[str]:
    return [type(m).__name__ for m in _torch_modules(enc) if getattr(m, "_forward_hooks", None)]


@pytest.mark.parametrize("name", list_encoders())
def test_encoder_conformance(name: str, tmp_path: Path):
    card = encoder_info(name)
    enc, ckpt, options = _create(name, tmp_path)
    spec = enc.spec

    # --- the contract and its registration
    assert isinstance(spec, InputSpec), f"{name}: spec is {type(spec).__name__}"
    if card.spec is not None and not options:
        assert spec == card.spec, f"{name}: created spec differs from the registered one"
    if card.embed_dim is not None:
        assert enc.embed_dim == card.embed_dim, f"{name}: embed_dim differs from the registration"
    layers = enc.layer_names()
    assert layers[-1] == FINAL_LAYER and len(set(layers)) == len(layers), layers
    if card.layers:
        assert list(card.layers) == layers, f"{name}: registered layers differ from layer_names()"

    # --- preprocessing at the contract's rate and at another one
    signals, leads = _records(spec, spec.fs)
    x = enc.preprocess(signals, spec.fs, leads)
    n_samples = spec.n_samples if spec.n_samples is not None else signals.shape[-1]
    assert x.shape == (N, spec.n_leads, n_samples) and x.dtype == np.float32 and np.isfinite(x).all()
    fs2 = _other_rate(spec)
    signals2, leads2 = _records(spec, fs2)
    x2 = enc.preprocess(signals2, fs2, leads2)
    assert x2.dtype == np.float32 and np.isfinite(x2).all()
    assert x2.shape[:2] == (N, spec.n_leads) and (spec.n_samples is None or x2.shape[2] == spec.n_samples)
    _check_rate_invariance(name, enc)

    # --- embeddings: shape, finiteness, determinism, all layers in one pass
    with torch.no_grad():
        emb = enc.embed(torch.as_tensor(x))
        per_layer = enc.embed_layers(torch.as_tensor(x), layers)  # a second pass: also checks determinism
    assert tuple(emb.shape) == (N, enc.embed_dim) and torch.isfinite(emb).all()
    assert list(per_layer) == layers
    for layer, out in per_layer.items():
        assert out.ndim == 2 and out.shape[0] == N and torch.isfinite(out).all(), (
            f"{name}:{layer} {tuple(out.shape)}"
        )
    torch.testing.assert_close(
        per_layer[FINAL_LAYER], emb, rtol=1e-5, atol=1e-6, msg=f"{name}: embeddings are not deterministic"
    )
    assert not _hooks_left(enc), f"{name}: forward hooks left on {_hooks_left(enc)}"

    # --- hooks are removed when the forward pass fails half-way (captum's lesson)
    if isinstance(enc, TorchEncoder) and len(layers) > 1:

        def boom(_x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("simulated failure")

        enc._forward = boom  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="simulated failure"):
            enc.embed_layers(torch.as_tensor(x), layers)
        del enc._forward
        assert not _hooks_left(enc), f"{name}: hooks left behind after a failing forward"

    # --- gradients reach the input of differentiable encoders (attributions rely on it)
    if enc.differentiable:
        xg = torch.as_tensor(x[:1]).clone().requires_grad_(True)
        enc.embed(xg).sum().backward()
        assert xg.grad is not None and torch.isfinite(xg.grad).all(), f"{name}: no finite input gradient"

    # --- provenance
    identity = json.loads(json.dumps(enc.identity()))
    assert identity["encoder"] == name and identity["spec"] == spec.to_dict()

    # --- a mismatching checkpoint is refused loudly
    if card.needs_checkpoint:
        with pytest.raises(CheckpointError):
            create_encoder(name, device="cpu", **card.test_options)
    if ckpt is not None:
        model_keys = dict(enc.module.state_dict()) if isinstance(enc, TorchEncoder) else {}
        _check_mismatch_refused(name, Path(ckpt), tmp_path, card, model_keys)


def _sines(spec: InputSpec, fs: float) -> np.ndarray:
    """One 12-lead record of two sines (3 and 7 Hz, a phase per lead) at ``fs``, as long as the
    contract's window (10 s for any length): the same continuous signal at every rate."""
    duration = spec.window_s if spec.window_s is not None else 10.0
    t = np.arange(int(round(duration * fs))) / fs
    phase = np.linspace(0.0, np.pi, len(LEADS_12))[:, None]
    x = np.sin(2 * np.pi * 3.0 * t + phase) + 0.5 * np.sin(2 * np.pi * 7.0 * t + 2 * phase)
    return x[None].astype(np.float32)


def _check_rate_invariance(name: str, enc: Encoder) -> None:
    """The contract resamples: a signal given at the native rate and at 2x and 5x that rate
    reaches the model as the same input (padding or cropping to the window cannot hide a
    missing resampling step here: the samples themselves are compared)."""
    spec = enc.spec
    native = enc.preprocess(_sines(spec, spec.fs), spec.fs, LEADS_12)
    lo, hi = native.shape[-1] // 10, native.shape[-1] - native.shape[-1] // 10  # filter edges aside
    ref = native[..., lo:hi]
    scale = float(np.sqrt(np.mean(ref**2)))
    assert scale > 0, f"{name}: preprocessing removed the 3 and 7 Hz test signal"
    for factor in (2, 5):
        fs = factor * spec.fs
        x = enc.preprocess(_sines(spec, fs), fs, LEADS_12)
        assert x.shape == native.shape, f"{name}: {x.shape} at {fs:g} Hz, {native.shape} at {spec.fs:g} Hz"
        err = float(np.sqrt(np.mean((x[..., lo:hi] - ref) ** 2))) / scale
        assert err < 0.05, (
            f"{name}: the model input from a {fs:g} Hz record differs from the {spec.fs:g} Hz one "
            f"(relative RMS {err:.3f}); is the record resampled to the contract's rate?"
        )


def _state_dicts(obj: Any, depth: int = 0) -> list[dict]:
    """Every (mutable) mapping of tensors inside a checkpoint container."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return [obj]
    found: list[dict] = []
    if isinstance(obj, Mapping) and depth < 3:
        for value in obj.values():
            found += _state_dicts(value, depth + 1)
    return found


def _key_the_model_needs(sds: list[dict], model: Mapping[str, torch.Tensor]) -> tuple[dict, str, str] | None:
    """In the container's state dict that resembles the model most (a checkpoint may hold
    several: decoder, text encoder, optimizer), a published key that surely maps onto a model
    parameter: the longest dotted suffix shared with a model key of the same shape, the fewest
    extra prefix parts (so a copy such as an EMA teacher, which families drop on purpose, is not
    picked). Returns ``(state dict, key, matching model key)``."""
    best: tuple[int, int, int, str, str, int] | None = None
    for i, sd in enumerate(sds):
        for k, v in sorted(sd.items()):
            kp = k.split(".")
            for m, w in model.items():
                if tuple(w.shape) != tuple(v.shape):
                    continue
                mp = m.split(".")
                common = 0
                while common < min(len(kp), len(mp)) and kp[-1 - common] == mp[-1 - common]:
                    common += 1
                score = (common, -(len(kp) - common), len(sd))
                if common and (best is None or score > best[:3]):
                    best = (*score, k, m, i)
    return None if best is None else (sds[best[5]], best[3], best[4])


def _check_mismatch_refused(
    name: str, ckpt: Path, tmp_path: Path, card: EncoderCard, model_keys: Mapping[str, torch.Tensor]
) -> None:
    options = dict(card.test_options)
    bad_dir = tmp_path / "mismatch"
    bad_dir.mkdir()
    target = bad_dir / ckpt.name
    weights_file = ckpt
    if ckpt.is_dir():
        shutil.copytree(ckpt, target)
        files = sorted(
            p for p in target.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
        )
        weights_file = files[0] if files else target
    else:  # copy the file's siblings too: some formats keep a config beside the weights
        for sibling in ckpt.parent.iterdir():
            if sibling.is_file():
                shutil.copy(sibling, bad_dir / sibling.name)
        weights_file = target
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch.load's note on TorchScript archives
            obj = load_checkpoint(weights_file)
    except CheckpointError:
        obj = None
    sds = _state_dicts(obj) if obj is not None else []
    pick = _key_the_model_needs(sds, model_keys) if sds and model_keys else None
    if sds and pick is None:  # no torch module to compare with: any key of the largest state dict
        sd = max(sds, key=len)
        pick = (sd, sorted(sd)[0], sorted(sd)[0])
    if pick is not None:
        sd, removed, model_key = pick
        ptr = sd[removed].data_ptr()
        for alias in [k for k, v in sd.items() if v.data_ptr() == ptr]:  # one parameter, all its names
            del sd[alias]
        if weights_file.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(sd, str(weights_file))
        else:
            torch.save(obj, weights_file)
        with pytest.raises(CheckpointError) as err:
            create_encoder(name, checkpoint=target, device="cpu", **options)
        msg = str(err.value)
        assert removed in msg or model_key in msg or "missing" in msg.lower(), (
            f"{name}: the error does not name the removed key {removed!r}: {msg[:300]}"
        )
    else:  # formats without a key layout (TorchScript, ONNX): a truncated file
        data = weights_file.read_bytes()
        weights_file.write_bytes(data[: len(data) // 3])
        with pytest.raises(CheckpointError):
            create_encoder(name, checkpoint=target, device="cpu", **options)


# ------------------------------------------------------------------ `ecgprobe encoders` (CLI)
def test_cli_lists_every_registered_encoder_without_creating_it(capsys, monkeypatch):
    from ecgprobe.cli import main
    from ecgprobe.encoders import ENCODERS

    def refuse(*_a: Any, **_k: Any):
        raise AssertionError("`ecgprobe encoders` must not instantiate encoders")

    monkeypatch.setattr(Encoder, "__init__", refuse)  # every encoder's constructor goes through it
    assert main(["encoders", "--all"]) == 0  # --all: the internal test encoder too
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    for name in list_encoders():
        assert name in lines, f"{name} missing from `ecgprobe encoders`"
        dim = encoder_info(name).embed_dim
        assert (str(dim) if dim is not None else "inferred") in lines[name]
    assert "500 Hz, 10 s, 12 leads, zscore_lead" in lines["random-resnet1d"]
    assert "declared by the user" in lines["onnx"]
    assert main(["encoders", "--all", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_encoders() == [e.name for e in ENCODERS]
    for name in list_encoders():
        assert main(["encoders", "--details", name, "--json"]) == 0
        details = json.loads(capsys.readouterr().out)
        assert details["name"] == name and "input_contract" in details and "options" in details


def test_cli_details_show_contract_layers_options_and_licence(capsys):
    from ecgprobe.cli import main

    assert main(["encoders", "--details", "openecg-codec"]) == 0
    out = capsys.readouterr().out
    for text in ("normalisation rank", "block4", "Apache-2.0", "version='v6'", "pip install", "5000 samples"):
        assert text in out, text
    assert main(["encoders", "--details", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert "inferred from the model" in out and "output_layout" in out
    assert main(["encoders", "--details", "random-resnt1d"]) == 1  # a typo: an error message, exit 1
    assert "did you mean 'random-resnet1d'" in capsys.readouterr().err
