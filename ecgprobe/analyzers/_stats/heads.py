"""A linear probe's head in raw embedding space, shared by the analyses that explain or
threshold a fitted probe (``probe_shap``, ``input_attribution``, ``operating_points``).

:func:`resolve_head` takes a fitted ``linear_probe`` result (or settings to fit one) and
returns the :class:`LinearHead` (``logits = X @ W.T + b``) checked against the embeddings it
will be applied to; :func:`encoder_from_provenance` re-creates the encoder that produced a set
of embeddings, for the analyses that differentiate through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgprobe.analyzers.base import ANALYZERS, Result
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = [
    "LinearHead",
    "check_encoder",
    "encoder_from_provenance",
    "fit_probe",
    "linear_head",
    "resolve_head",
]


@dataclass(frozen=True)
class LinearHead:
    """A probe's linear head in raw embedding space: ``logits = X @ W.T + b``.

    Attributes:
        W: ``(C, D)`` float64 weights.
        b: ``(C,)`` float64 intercepts.
        labels: the label of each row.
        summary: what the head came from (probe kind, seed, params, embeddings key), JSON-ready.
    """

    W: np.ndarray
    b: np.ndarray
    labels: tuple[str, ...]
    summary: dict[str, Any]

    def logits(self, X: np.ndarray) -> np.ndarray:
        """``(N, D)`` embeddings -> ``(N, C)`` logits."""
        return np.asarray(X, dtype=np.float64) @ self.W.T + self.b


def linear_head(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """The probe's head in the raw embedding space: logits (or predictions) ``= X @ W.T + b``.

    ``W = coef / scaler_scale`` and ``b = intercept - W @ scaler_mean``; rows follow
    ``result.metrics["labels_fitted"]``.

    Raises:
        AnalysisError: the result has no linear head (not a linear probe, or arrays not loaded).

    Example:
        >>> W, b = linear_head(result)  # doctest: +SKIP
        >>> logits = emb.X @ W.T + b  # doctest: +SKIP
    """
    missing = [k for k in ("coef", "intercept", "scaler_mean", "scaler_scale") if k not in result.arrays]
    if missing:
        raise AnalysisError(
            f"result {result.kind!r} has no linear head (arrays {missing} missing); "
            "use a linear_probe result saved with its .npz"
        )
    coef = np.asarray(result.arrays["coef"], dtype=np.float64)
    W = coef / np.asarray(result.arrays["scaler_scale"], dtype=np.float64)[None, :]
    b = np.asarray(result.arrays["intercept"], dtype=np.float64) - W @ np.asarray(
        result.arrays["scaler_mean"], dtype=np.float64
    )
    return W, b


def fit_probe(settings: Mapping[str, Any], emb: Embeddings, records: RecordSet) -> Result:
    """Fit a :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` with ``settings`` on ``emb``/``records``
    (its own splits: C chosen on val, fitted on train).

    Raises:
        ConfigError: unknown or invalid probe settings.
        AnalysisError: the probe cannot be fitted (e.g. no label with positives).
    """
    # by registry name: the linear probe is an analyzer above this helper package
    return ANALYZERS.get("linear_probe")(**dict(settings)).run(emb, records)


def _same_encoder(probe: Result, emb: Embeddings) -> str | None:
    """A reason why ``probe`` was not fitted on embeddings like ``emb`` (None when compatible)."""
    pe = probe.provenance.get("embeddings", {}) if isinstance(probe.provenance, dict) else {}
    if pe.get("layer") and pe.get("layer") != emb.layer:
        return f"the probe was fitted on layer {pe.get('layer')!r}, these embeddings are layer {emb.layer!r}"
    a = (pe.get("encoder") or {}).get("weights_sha256")
    b = (emb.provenance.get("encoder") or {}).get("weights_sha256")
    if a and b and a != b:
        return f"the probe was fitted on embeddings of encoder weights {a[:12]}…, these come from {b[:12]}…"
    return None


def resolve_head(
    probe: Result | Mapping[str, Any] | None,
    emb: Embeddings,
    records: RecordSet,
    labels: Sequence[str] | None = None,
) -> LinearHead:
    """The linear head to explain, from a fitted probe result or fitted here.

    Args:
        probe: a :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` result (or any result with the
            arrays ``coef``, ``intercept``, ``scaler_mean``, ``scaler_scale`` and
            ``metrics["labels_fitted"]``); a mapping of ``LinearProbe`` settings to fit one on
            ``emb``/``records``; or ``None`` to fit one with default settings.
        emb: the embeddings the head will be applied to.
        records: their records (used only when fitting).
        labels: keep only these labels (default: every label the probe fitted).

    Raises:
        ConfigError: ``probe`` of the wrong type, or labels the probe did not fit.
        AnalysisError: a probe fitted on embeddings of another dimension, layer or encoder, or
            a result without the head's arrays.

    Example:
        >>> head = resolve_head(probe_result, emb, records, labels=["MI"])  # doctest: +SKIP
        >>> head.logits(emb.X).shape  # doctest: +SKIP
        (500, 1)
    """
    if probe is None or isinstance(probe, Mapping):
        probe = fit_probe(probe or {}, emb, records)
    if not isinstance(probe, Result):
        raise ConfigError(
            f"probe must be a fitted LinearProbe result, a dict of LinearProbe settings or None; got {type(probe).__name__}"
        )
    if "labels_fitted" not in probe.metrics:
        raise ConfigError(
            f"probe result {probe.kind!r} has no linear head (no metrics['labels_fitted']); use a linear_probe result"
        )
    W, b = linear_head(probe)
    fitted = [str(x) for x in probe.metrics["labels_fitted"]]
    W = np.atleast_2d(W)
    b = np.atleast_1d(b)
    if W.shape != (len(fitted), emb.dim) or b.shape != (len(fitted),):
        raise AnalysisError(
            f"the probe's head has shape {W.shape} (+{b.shape}) for {len(fitted)} labels, but the embeddings have "
            f"{emb.dim} dimensions; fit the probe on these embeddings"
        )
    reason = _same_encoder(probe, emb)
    if reason:
        raise AnalysisError(f"{reason}; fit the probe on the embeddings you explain")
    if labels is None:
        keep = list(range(len(fitted)))
    else:
        unknown = [lab for lab in labels if lab not in fitted]
        if unknown:
            raise ConfigError(f"labels {unknown} were not fitted by the probe; it fitted {fitted}")
        keep = [fitted.index(lab) for lab in dict.fromkeys(labels)]
    if not keep:
        raise AnalysisError("the probe fitted no labels; nothing to attribute")
    summary = {
        "kind": probe.kind,
        "seed": probe.seed,
        "params": probe.params,
        "embeddings_key": probe.provenance.get("embeddings", {}).get("key", ""),
        "created": probe.created,
    }
    return LinearHead(W=W[keep], b=b[keep], labels=tuple(fitted[i] for i in keep), summary=summary)


def encoder_from_provenance(emb: Embeddings, device: str = "cpu") -> Any:
    """Re-create the encoder that produced ``emb`` (encoders without a checkpoint only).

    Raises:
        ConfigError: no encoder recorded, or one that needs a checkpoint (pass the encoder).
        AnalysisError: the re-created weights differ from those that made the embeddings.
    """
    from ecgprobe.encoders.registry import create_encoder, encoder_info

    ident = emb.provenance.get("encoder") or {}
    name = ident.get("encoder")
    if not name:
        raise ConfigError(
            "these embeddings record no encoder (imported matrices?); pass the encoder explicitly (encoder=...)"
        )
    if encoder_info(name).needs_checkpoint:
        raise ConfigError(
            f"encoder {name!r} needs its checkpoint to be re-created; pass "
            f"encoder=create_encoder({name!r}, checkpoint=PATH)"
        )
    enc = create_encoder(name, device=device, **(ident.get("options") or {}))
    _check_weights(enc, emb, "re-created encoder")
    return enc


def _check_weights(encoder: Any, emb: Embeddings, what: str) -> None:
    want = (emb.provenance.get("encoder") or {}).get("weights_sha256")
    if want and encoder.weights_sha256 and encoder.weights_sha256 != want:
        raise AnalysisError(
            f"{what} {encoder.name!r} has weights {encoder.weights_sha256[:12]}…, but the embeddings were made "
            f"with {want[:12]}…; pass the encoder that made them"
        )


def check_encoder(encoder: Any, emb: Embeddings) -> None:
    """Require ``encoder`` to be the one that made ``emb`` (its final embedding).

    Raises:
        AnalysisError: another embedding size, an intermediate layer, or other weights.
    """
    if encoder.embed_dim != emb.dim:
        raise AnalysisError(
            f"encoder {encoder.name!r} makes {encoder.embed_dim}-dim embeddings but these have {emb.dim}; "
            "pass the encoder that produced them"
        )
    if emb.layer != "embedding":
        raise AnalysisError(
            f"input attributions explain the encoder's final embedding, but these embeddings are layer {emb.layer!r}"
        )
    _check_weights(encoder, emb, "encoder")
