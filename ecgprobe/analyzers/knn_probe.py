"""The k-nearest-neighbour probe: how much label information sits in the embedding's local
neighbourhoods, without fitting anything.

A record's score for a label is the fraction of its k nearest *training* records carrying the
label (neighbours never come from val or test, so nothing leaks). k is chosen on the validation
split from a grid: one k for all labels, the one with the best mean validation AUROC, because the
neighbourhood is a property of the embedding, not of a label. Test metrics and patient-bootstrap
intervals are those of the linear probe (same schema, without the linear head).

Neighbours are exact: queries are processed in chunks, each compared with every training record
by one matrix product (cosine similarity, or ``2 q.t - |t|^2`` for euclidean distance, which
orders neighbours like the distance does) followed by a top-k, so memory stays bounded by
``chunk x n_train`` similarities whatever the dataset size.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import DEFAULT_MIN_POSITIVES
from ecgprobe.analyzers._stats.evaluation import check_common, evaluate_probe, select_by_val, val_auroc
from ecgprobe.analyzers._stats.probe_data import fit_scaler, fittable_targets, split_data
from ecgprobe.analyzers._stats.solvers import resolve_device
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["DEFAULT_KS", "KNNProbe", "KNNProbeResult", "nearest_neighbours"]

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 20, 50, 100)
METRICS = ("cosine", "euclidean")


class KNNProbeResult(Result):
    """Result of :class:`KNNProbe` (``kind = "knn_probe"``).

    Schema: as :class:`ecgprobe.analyzers.linear_probe.LinearProbeResult` (multi-label) without
    ``coef``/``intercept``/``C``/``c_grid``; instead metrics ``k`` (chosen), ``metric``,
    ``standardize``, ``labels_fitted`` (labels with a positive and a negative in train), and arrays
    ``k_grid`` (K,), ``val_auroc_grid`` (K x C), plus ``scaler_mean``/``scaler_scale`` when
    ``standardize`` is on. Table ``per_label`` adds n_train_pos, n_val_pos, val_auroc.
    """

    KIND: ClassVar[str] = "knn_probe"


def nearest_neighbours(
    queries: np.ndarray,
    train: np.ndarray,
    k: int,
    *,
    metric: str = "cosine",
    chunk_size: int | None = None,
    max_chunk_bytes: int = 64 * 2**20,
    device: str = "cpu",
) -> np.ndarray:
    """Indices ``(n_queries, k)`` of the exact k nearest rows of ``train``, nearest first.

    Args:
        queries: ``(m, D)`` query embeddings.
        train: ``(n, D)`` reference embeddings.
        k: neighbours per query (``<= n``).
        metric: ``"cosine"`` or ``"euclidean"``.
        chunk_size: queries per chunk; default: as many as fit ``max_chunk_bytes`` of similarities.
        max_chunk_bytes: memory bound of one chunk's similarity matrix.
        device: ``"cpu"`` or ``"cuda"``.

    Raises:
        ConfigError: unknown metric, or ``k`` not in ``1..n``.

    Example:
        >>> t = np.eye(3, dtype=np.float32)
        >>> int(nearest_neighbours(t[:1] + 0.1, t, 2, metric="euclidean")[0, 0])
        0
    """
    import torch

    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    n = len(train)
    if not 1 <= int(k) <= n:
        raise ConfigError(f"k must be in 1..{n} (the number of training records), got {k}")
    dev = torch.device(device)
    T = torch.as_tensor(np.ascontiguousarray(train, dtype=np.float32), device=dev)
    if metric == "cosine":
        T = torch.nn.functional.normalize(T, dim=1)
        bias = None
    else:
        bias = -(T * T).sum(1)  # 2 q.t - |t|^2 = |q|^2 - |q - t|^2: larger = nearer
    step = int(chunk_size) if chunk_size else max(1, max_chunk_bytes // (4 * n))
    out = np.empty((len(queries), int(k)), dtype=np.int64)
    for lo in range(0, len(queries), step):
        Q = torch.as_tensor(np.ascontiguousarray(queries[lo : lo + step], dtype=np.float32), device=dev)
        if metric == "cosine":
            sim = torch.nn.functional.normalize(Q, dim=1) @ T.T
        else:
            sim = torch.addmm(bias[None, :].expand(len(Q), n), Q, T.T, alpha=2.0)
        out[lo : lo + step] = torch.topk(sim, int(k), dim=1, largest=True, sorted=True).indices.cpu().numpy()
    return out


def neighbour_fractions(nbr: np.ndarray, Y: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Fraction of positive neighbours ``(len(ks), m, C)`` among the first k of ``nbr`` for each k."""
    out = np.empty((len(ks), len(nbr), Y.shape[1]), dtype=np.float32)
    for lo in range(0, len(nbr), 1024):  # bounded: 1024 x kmax x C counts at a time
        hits = np.cumsum(Y[nbr[lo : lo + 1024]], axis=1, dtype=np.int32)  # (m, kmax, C)
        out[:, lo : lo + 1024] = hits[:, ks - 1, :].transpose(1, 0, 2) / ks[:, None, None]
    return out


@ANALYZERS.register("knn_probe", summary="k-nearest-neighbour probe, k chosen on val, bootstrap CIs")
@analyzer_settings
class KNNProbe(Analyzer):
    """kNN probe of frozen embeddings (see the module docstring).

    Args:
        ks: k grid (values above the number of training records are dropped, with a note).
        metric: ``"cosine"`` (default) or ``"euclidean"``.
        standardize: z-score dimensions with train statistics first (changes euclidean geometry).
        n_resamples: bootstrap resamples for the confidence intervals.
        ci_level: confidence level.
        ci_method: ``"percentile"`` (default) or ``"bca"`` (bias-corrected and accelerated, with
            a patient jackknife: better coverage with few positives, see
            :mod:`ecgprobe.analyzers._stats.bootstrap`).
        min_positives: labels with fewer positive (or negative) test patients are flagged and
            left out of the headline macro averages (reported beside them over all labels).
        n_bins: bins of the calibration error and reliability diagram.
        seed: seed of the bootstrap.
        chunk_size: queries per similarity chunk (default: bounded to 64 MiB).
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.

    Example:
        >>> result = KNNProbe(metric="cosine").run(emb, records)  # doctest: +SKIP
        >>> result.metrics["k"], result.metrics["macro_auroc"]  # doctest: +SKIP
    """

    ks: tuple[int, ...] = DEFAULT_KS
    metric: str = "cosine"
    standardize: bool = False
    n_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile"
    min_positives: int = DEFAULT_MIN_POSITIVES
    n_bins: int = 10
    seed: int = 0
    chunk_size: int | None = None
    device: str = "auto"

    def _validate(self) -> None:
        try:
            ks = sorted({int(k) for k in self.ks})
        except (TypeError, ValueError):
            raise ConfigError(f"ks must be a sequence of positive integers, got {self.ks!r}") from None
        if not ks or ks[0] < 1:
            raise ConfigError(f"ks must be positive integers, got {self.ks!r}")
        self.ks = tuple(ks)
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {list(METRICS)}, got {self.metric!r}")
        if self.chunk_size is not None and int(self.chunk_size) < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {self.chunk_size}")
        check_common(self.n_resamples, self.ci_level, self.n_bins, self.ci_method, self.min_positives)

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        if records.task != "multilabel":
            raise AnalysisError("the kNN probe handles multi-label targets; use linear_probe for regression")
        data = split_data(emb.X, records)
        X = dict(data.X)
        arrays: dict[str, Any] = {}
        if self.standardize:
            mean, scale, _ = fit_scaler(X["train"])
            X = {s: ((x - mean) / scale).astype(np.float32) for s, x in X.items()}
            arrays.update(scaler_mean=mean, scaler_scale=scale)
        targets = fittable_targets(list(records.label_names), data.y)
        Y = targets.Y
        n_train = len(X["train"])
        ks = np.asarray([k for k in self.ks if k <= n_train], dtype=np.int64)
        notes = list(data.notes)
        if len(ks) < len(self.ks):
            notes.append(f"k values above the {n_train} training records were dropped from the grid")
        if not len(ks):
            ks = np.asarray([n_train])
        device = resolve_device(self.device)
        opts = {"metric": self.metric, "chunk_size": self.chunk_size, "device": device}
        nbr_val = nearest_neighbours(X["val"], X["train"], int(ks[-1]), **opts)
        frac_val = neighbour_fractions(nbr_val, Y["train"], ks)
        val_auc = val_auroc(Y["val"], frac_val)
        _, _, best = select_by_val(val_auc, per_label=False)
        k = int(ks[best])
        nbr_test = nearest_neighbours(X["test"], X["train"], k, **opts)
        p_test = neighbour_fractions(nbr_test, Y["train"], np.asarray([k]))[0]
        ev = evaluate_probe(self, targets, frac_val[best], p_test, data, val_auc[best])
        notes += ev.notes
        metrics = {
            **ev.metrics,
            "k": k,
            "metric": self.metric,
            "standardize": bool(self.standardize),
            "n_train": n_train,
            "n_val": len(X["val"]),
            "device": device,
        }
        arrays.update(k_grid=ks, val_auroc_grid=val_auc, **ev.arrays)
        return KNNProbeResult(
            kind=KNNProbeResult.KIND,
            metrics=metrics,
            tables=ev.tables,
            arrays=arrays,
            seed=int(self.seed),
            notes=notes,
        )
