"""``probe_shap``: exact SHAP values of a linear probe over embedding dimensions.

For a linear model ``f_c(x) = W_c · x + b_c`` with *interventional* (independent-feature)
SHAP and a background distribution with mean ``μ``, the Shapley value of dimension ``j`` for
record ``i`` and label ``c`` is exactly

    φ_icj = W_cj (x_ij − μ_j)

(Lundberg & Lee 2017, "linear SHAP"; what ``shap.LinearExplainer`` computes with an
``Independent`` masker). Its values add up to ``f_c(x_i) − E_bg[f_c]`` (efficiency). No
sampling is needed, so this is exact and costs one subtraction and one product per value.

Here the background is the probe's training distribution (the ``train`` split embeddings), the
explained records are the ``test`` split, and ``f_c`` is the probe's logit (its decision
function) in raw embedding space. Per label the analyzer reports which dimensions matter
(mean |φ| per dimension) and how concentrated that importance is:

- ``top1_frac`` / ``topk_frac``: share of the total mean |φ| held by the top 1 / top-k dimensions;
- ``gini``: Gini coefficient of the mean |φ| over dimensions (0 = spread evenly, → 1 = one dimension);
- ``effective_dims``: ``exp(H(p))`` with ``p`` the normalised mean |φ| (Hill number of order 1:
  the number of equally important dimensions that would give the same entropy).

Since ``|φ_icj| = |W_cj| |x_ij − μ_j|``, the mean |φ| of label ``c`` is ``|W_c| ⊙ mean_i |x_i − μ|``;
bootstrap confidence intervals over the explained records reuse that product, so they cost one
matrix product for all labels.

The linear head comes from a :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` result (its
:func:`~ecgprobe.analyzers._stats.heads.linear_head` in raw embedding space; ``metrics["labels_fitted"]``
names the rows), or is fitted here with ``LinearProbe`` settings
(:func:`~ecgprobe.analyzers._stats.heads.resolve_head`, shared with ``input_attribution`` and
``operating_points``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import check_resampling
from ecgprobe.analyzers._stats.heads import encoder_from_provenance, resolve_head
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.data.record import SPLITS, RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["ProbeShap", "ProbeShapResult", "concentration", "linear_shap"]


# ------------------------------------------------------------------------------ mathematics
def linear_shap(W: np.ndarray, X: np.ndarray, background_mean: np.ndarray) -> np.ndarray:
    """Exact interventional SHAP values of linear models: ``φ[i, c, j] = W[c, j] (X[i, j] − μ[j])``.

    Args:
        W: ``(C, D)`` weights (raw embedding space) or ``(D,)`` for one output.
        X: ``(N, D)`` records to explain.
        background_mean: ``(D,)`` mean of the background distribution.

    Returns:
        ``(N, C, D)`` float64 (``(N, D)`` when ``W`` is 1-D). For each record and output the values
        sum to ``f(x) − E_bg[f]``.

    Example:
        >>> import numpy as np
        >>> linear_shap(np.array([2.0, -1.0]), np.array([[1.0, 1.0]]), np.array([0.0, 3.0]))
        array([[2., 2.]])
    """
    W = np.asarray(W, dtype=np.float64)
    Xc = np.asarray(X, dtype=np.float64) - np.asarray(background_mean, dtype=np.float64)
    if W.ndim == 1:
        return Xc * W
    return Xc[:, None, :] * W[None, :, :]


def concentration(importance: np.ndarray, k: int = 10) -> dict[str, np.ndarray]:
    """How concentrated non-negative importances are over dimensions (last axis).

    Returns ``top1_frac``, ``topk_frac`` (share of the total in the largest 1 / ``k`` values),
    ``gini`` (Gini coefficient) and ``effective_dims`` (``exp`` of the entropy of the normalised
    importances), each with the shape of ``importance`` minus its last axis. An all-zero vector
    gives NaN.

    Example:
        >>> import numpy as np
        >>> {k: float(v) for k, v in concentration(np.array([1.0, 1.0, 0.0, 0.0]), k=2).items()}
        {'top1_frac': 0.5, 'topk_frac': 1.0, 'gini': 0.5, 'effective_dims': 2.0}
    """
    imp = np.asarray(importance, dtype=np.float64)
    d = imp.shape[-1]
    total = imp.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = imp / total
        desc = -np.sort(-p, axis=-1)
        top1 = desc[..., 0]
        topk = desc[..., : min(k, d)].sum(axis=-1)
        asc = desc[..., ::-1]
        ranks = np.arange(1, d + 1)
        gini = 2.0 * (asc * ranks).sum(axis=-1) / d - (d + 1) / d
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        eff = np.exp(-plogp.sum(axis=-1))
    bad = total[..., 0] <= 0
    out = {"top1_frac": top1, "topk_frac": topk, "gini": gini, "effective_dims": eff}
    return {key: np.where(bad, np.nan, val) for key, val in out.items()}


# -------------------------------------------------------------------------------- analyzer
@dataclass
class ProbeShapResult(Result):
    """Result of :class:`ProbeShap`.

    Arrays (``C`` labels in ``metrics["labels"]`` order, ``D`` dimensions, ``N`` explained records):
        ``W`` (C, D), ``b`` (C,): the head in raw embedding space (logit = x·W_c + b_c).
        ``background_mean`` (D,): mean of the background (train) embeddings.
        ``base_value`` (C,): E_bg[logit] = W_c·μ + b_c (what the SHAP values of a record add to).
        ``mean_abs_shap`` (C, D): mean over explained records of |φ|; ``mean_shap`` (C, D): signed mean.
        ``mean_abs_centered`` (D,): mean_i |x_ij − μ_j| (so ``mean_abs_shap = |W| * mean_abs_centered``).
        ``ids`` (N,): explained record ids; ``shap_values`` (N, C, D) only with ``store_values=True``
        (otherwise recompute: ``linear_shap(W, X, background_mean)`` on those records' embeddings).
        ``concentration_ci`` (C, 4, 2): bootstrap CIs of (top1_frac, topk_frac, gini, effective_dims).
    Tables:
        ``labels``: per label the concentration metrics with CIs, the base value, the total mean |φ|.
        ``top_dims``: per label the ``n_top`` dimensions by mean |φ| (dim, name, mean_abs_shap,
        mean_shap, share of the total).
    Metrics:
        ``labels``, ``dim_names`` (or None for ``dim_<j>``), ``n_background``, ``n_explained``,
        ``top_k``, and the mean of each concentration metric over labels.
    """

    KIND: ClassVar[str] = "probe_shap"

    def top_dims(self, label: str) -> list[dict[str, Any]]:
        """The ``top_dims`` rows of one label."""
        return [r for r in self.tables.get("top_dims", []) if r["label"] == label]


_CONC = ("top1_frac", "topk_frac", "gini", "effective_dims")


@ANALYZERS.register("probe_shap", summary="exact SHAP of a linear probe over embedding dimensions")
@analyzer_settings
class ProbeShap(Analyzer):
    """Exact (closed-form) SHAP values of a linear probe over embedding dimensions.

    Args:
        probe: a fitted ``LinearProbe`` result, a dict of ``LinearProbe`` settings to fit one on
            the given embeddings and records, or ``None`` (fit one with default settings).
        labels: labels to explain (default: all labels the probe fitted).
        background_split: split whose embeddings form the background distribution (its mean is
            the reference of every SHAP value).
        explain_split: split whose records are explained.
        top_k: ``k`` of the ``topk_frac`` concentration metric.
        n_top: dimensions listed per label in the ``top_dims`` table.
        n_resamples: bootstrap resamples of the explained records for the CIs (0: none).
        ci_level: confidence level of the intervals.
        feature_names: names of the embedding dimensions; default: the encoder's
            ``feature_names()`` when it has them (e.g. ``handcrafted``), else ``dim_<j>``.
        encoder: the encoder that produced the embeddings (only used for ``feature_names``; when
            omitted and names are not given, one without checkpoint is re-created from the
            embeddings' provenance if its class provides names).
        store_values: also store the full ``(N, C, D)`` SHAP tensor.
        seed: seed of the bootstrap.

    Example:
        >>> res = ProbeShap(probe=probe_result).run(emb, records)  # doctest: +SKIP
        >>> res.table("labels")[["label", "top1_frac", "effective_dims"]]  # doctest: +SKIP
    """

    requires: ClassVar[Mapping[str, str]] = {"probe": "linear_probe"}

    probe: Result | Mapping[str, Any] | None = None
    labels: Sequence[str] | None = None
    background_split: str = "train"
    explain_split: str = "test"
    top_k: int = 10
    n_top: int = 20
    n_resamples: int = 200
    ci_level: float = 0.95
    feature_names: Sequence[str] | None = None
    encoder: Any = None
    store_values: bool = False
    seed: int = 0

    def _validate(self) -> None:
        for name in ("background_split", "explain_split"):
            if getattr(self, name) not in SPLITS:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not a split; use one of {list(SPLITS)}")
        for name in ("top_k", "n_top"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        check_resampling(self.n_resamples, self.ci_level, least=0)

    def _dim_names(self, emb: Embeddings) -> list[str] | None:
        if self.feature_names is not None:
            names = [str(n) for n in self.feature_names]
            if len(names) != emb.dim:
                raise ConfigError(f"feature_names has {len(names)} names for {emb.dim} embedding dimensions")
            return names
        if emb.layer != "embedding":
            return None
        enc = self.encoder
        if enc is None:
            from ecgprobe.encoders.registry import ENCODERS

            ident = emb.provenance.get("encoder") or {}
            name = ident.get("encoder")
            if not name or name not in ENCODERS or ENCODERS.card(name).needs_checkpoint:
                return None
            enc = encoder_from_provenance(emb)
        names = enc.feature_names() if callable(getattr(enc, "feature_names", None)) else None
        return [str(n) for n in names] if names is not None and len(names) == emb.dim else None

    def _run(self, emb: Embeddings, records: RecordSet) -> ProbeShapResult:
        head = resolve_head(self.probe, emb, records, self.labels)
        bg = records.split == self.background_split
        ex = records.split == self.explain_split
        if not bg.any() or not ex.any():
            raise AnalysisError(
                f"dataset {records.name!r} has {int(bg.sum())} {self.background_split!r} and {int(ex.sum())} "
                f"{self.explain_split!r} records; both splits are needed (background and explained records)"
            )
        X = emb.X[ex].astype(np.float64)
        mu = emb.X[bg].astype(np.float64).mean(axis=0)
        W, b = head.W, head.b
        centred = np.abs(X - mu)  # (N, D); |φ_icj| = |W_cj| * centred_ij
        mac = centred.mean(axis=0)
        mean_abs = np.abs(W) * mac
        mean_signed = W * (X.mean(axis=0) - mu)
        conc = concentration(mean_abs, k=self.top_k)
        ci_arr = self._bootstrap(centred, np.abs(W))
        names = self._dim_names(emb)
        base = W @ mu + b

        label_rows, top_rows = [], []
        for c, label in enumerate(head.labels):
            total = mean_abs[c].sum()
            row: dict[str, Any] = {
                "label": label,
                "n_explained": int(ex.sum()),
                "base_value": base[c],
                "mean_abs_total": total,
            }
            for m, key in enumerate(_CONC):
                row[key] = conc[key][c]
                row[f"{key}_ci"] = ci_arr[c, m].tolist()
            label_rows.append(row)
            order = np.argsort(-mean_abs[c], kind="stable")[: self.n_top]
            for rank, j in enumerate(order, start=1):
                top_rows.append(
                    {
                        "label": label,
                        "rank": rank,
                        "dim": int(j),
                        "name": names[j] if names else f"dim_{j}",
                        "mean_abs_shap": mean_abs[c, j],
                        "mean_shap": mean_signed[c, j],
                        "share": mean_abs[c, j] / total if total > 0 else float("nan"),
                    }
                )
        arrays = {
            "W": W,
            "b": b,
            "background_mean": mu,
            "base_value": base,
            "mean_abs_shap": mean_abs,
            "mean_shap": mean_signed,
            "mean_abs_centered": mac,
            "ids": np.asarray(records.ids[ex], dtype=str),
            "concentration_ci": ci_arr,
        }
        if self.store_values:
            arrays["shap_values"] = linear_shap(W, X, mu).astype(np.float32)
        metrics: dict[str, Any] = {
            "labels": list(head.labels),
            "dim_names": names,
            "n_background": int(bg.sum()),
            "n_explained": int(ex.sum()),
            "top_k": self.top_k,
            **{f"mean_{key}": float(np.nanmean(conc[key])) for key in _CONC},
        }
        notes = [
            f"SHAP values are exact (linear model, interventional): phi = W (x - mu), mu = mean of the "
            f"{int(bg.sum())} {self.background_split!r} embeddings; they explain the probe's logit.",
        ]
        if self.n_resamples:
            notes.append(
                f"{self.ci_level:.0%} CIs: percentile bootstrap over the explained records ({self.n_resamples} resamples)."
            )
        return ProbeShapResult(
            kind=ProbeShapResult.KIND,
            metrics=metrics,
            tables={"labels": label_rows, "top_dims": top_rows},
            arrays=arrays,
            params={"probe": head.summary, "encoder": getattr(self.encoder, "name", None)},
            seed=self.seed,
            notes=notes,
        )

    def _bootstrap(self, centred: np.ndarray, absW: np.ndarray) -> np.ndarray:
        """``(C, 4, 2)`` percentile CIs of the concentration metrics (NaN without bootstrap)."""
        C = absW.shape[0]
        out = np.full((C, len(_CONC), 2), np.nan)
        if not self.n_resamples:
            return out
        n = len(centred)
        rng = np.random.default_rng(self.seed)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=self.n_resamples)  # (B, N)
        mac_b = counts @ centred / n  # (B, D): mean |x - mu| per resample
        alpha = (1 - self.ci_level) / 2
        for c in range(C):
            conc = concentration(mac_b * absW[c], k=self.top_k)
            for m, key in enumerate(_CONC):
                out[c, m] = np.nanquantile(conc[key], [alpha, 1 - alpha])
        return out
