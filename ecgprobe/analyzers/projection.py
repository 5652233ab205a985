"""A 2-D UMAP projection of an embedding space, with the numbers that say how far to trust it.

A scatter plot alone invites over-reading, so the :class:`Projection` result carries, beside
the coordinates, quantitative descriptors (see :mod:`ecgprobe.analyzers._stats.descriptors`):
trustworthiness of the projection, per-label silhouettes and kNN label purity in the embedding
space *and* in the projection, the PCA spectrum with effective ranks (of the raw and of the
standardised features: raw effective ranks are dominated by the features with the largest
scale) and the mean cosine. Isotropy is no longer computed (see the descriptors module).

Reproducibility. With a seed, umap-learn runs its optimisation on one thread (it overrides
``n_jobs``; results differ across thread counts otherwise); the result records the threads that
actually ran, the parameters and the versions of umap-learn, pynndescent and numba. One more
source of run-to-run change is umap's spectral initialisation of a *disconnected* kNN graph (a
degenerate eigenproblem): when the exact kNN graph has several components the layout is
initialised from PCA instead, and the result says so.

kNN graph. Up to ``n² d ≤ 2.5·10¹¹`` (n ≈ 22,000 at d = 512; a few seconds on 2 cores) the
graph is computed exactly by batched matrix products (:mod:`ecgprobe.analyzers._stats.neighbors`) and
passed to umap as ``precomputed_knn``: exact and deterministic, and in a fresh process faster
than umap's own search, whose numba compilation alone takes ~35 s (pynndescent above 4,096
records, a compiled exact search below; ``benchmarks/bench_umap.py``). Larger sets use umap's
approximate search (``knn="exact"``/``"umap"`` force either). With cuML installed (``backend="auto"`` or ``"cuml"``) the GPU UMAP is used; its
layout differs from umap-learn's for the same seed, and the result says which ran.

Warm-up. umap-learn's kernels are compiled by numba on the first fit of a process (~25 s on 2
cores); :func:`cache_compiled_umap` keeps them in numba's on-disk cache, so a later process loads
them in a few seconds (the layout is the same).

Large sets. Above ``max_records`` records a seeded, label-stratified subsample is projected:
records are grouped by their exact label combination and each group keeps its share of the
sample (largest-remainder rounding), so rare combinations keep their proportion; regression
targets are subsampled uniformly. The size, the total and the policy are recorded; all
descriptors refer to the projected records.

Pre-projection. ``pca_dims=50`` projects to the top principal axes before UMAP (cheaper
neighbour search and optimisation). Trustworthiness is always measured against neighbourhoods
in the *original* embedding space, so the cost of the pre-projection shows in the result;
``benchmarks/bench_umap.py`` measures the difference (keep it when it is within 0.01).

Colouring. The result stores record ids, the label matrix and names, and age/sex where the
dataset has them, so a report can colour by any of them (or re-join other metadata by id).
"""

from __future__ import annotations

import threading
import time
import warnings
from importlib import metadata
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats import descriptors as desc
from ecgprobe.analyzers._stats.neighbors import METRICS, exact_knn
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError, DependencyError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["Projection", "ProjectionResult", "cache_compiled_umap", "stratified_subsample"]

_UMAP_METRICS = ("euclidean", "cosine", "manhattan", "correlation", "chebyshev")
#: ``n² d`` up to which the exact kNN graph is used by default (a few seconds on 2 cores).
_EXACT_KNN_BUDGET = 2.5e11


def stratified_subsample(keys: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a seeded sample of ``size`` records, proportional per key.

    Each distinct key (e.g. a label combination) gets ``size × share`` records, rounded by
    largest remainder so that the total is exactly ``size``.

    Example:
        >>> keys = np.array(["a"] * 90 + ["b"] * 10)
        >>> idx = stratified_subsample(keys, 20, np.random.default_rng(0))
        >>> len(idx), int((keys[idx] == "b").sum())
        (20, 2)
    """
    n = len(keys)
    if size >= n:
        return np.arange(n)
    groups, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse)
    quota = counts * size / n
    take = np.floor(quota).astype(int)
    extra = size - take.sum()
    take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
    out = [rng.choice(np.flatnonzero(inverse == g), take[g], replace=False) for g in range(len(groups))]
    return np.sort(np.concatenate(out))


class ProjectionResult(Result):
    """A 2-D projection with its descriptors.

    Schema:
        metrics: ``trustworthiness`` (``trust_k`` neighbours, ``n_eval`` query records),
            ``participation_ratio``, ``entropy_rank`` (raw features, in their units),
            ``participation_ratio_standardised``, ``entropy_rank_standardised`` (every
            feature at unit variance), ``n_varying_features``, ``mean_cosine`` (results made
            before the standardised ranks hold ``isotropy`` instead),
            ``n_projected``, ``n_total``, ``pca_retained_variance`` (with pre-projection).
            Wall times are not results (a seeded run reproduces its metrics): they are in
            ``provenance["timings"]`` (``fit_s``, the UMAP fit, and ``knn_s``; older results
            hold them in metrics).
        tables: ``labels`` — per label: ``label``, ``n_pos``, ``prevalence``,
            ``silhouette_embedding``/``silhouette_projection`` (mean over all queries of the
            has/has-not partition), ``silhouette_pos_embedding``/``_projection`` (mean over
            positive queries), ``purity_embedding``/``purity_projection`` (kNN label purity),
            ``purity_chance``.
        arrays: ``coords`` ``(n, 2)`` float32, ``ids`` (record ids in row order), ``y``
            (labels), ``label_names``, ``age`` (float32, NaN unknown) and ``sex`` (strings)
            when the dataset has them, ``explained_variance_ratio``, ``eval_idx`` (rows used
            as queries for the descriptors).
        params: the settings, plus ``umap`` (the parameters that ran, ``threads``, ``backend``,
            ``knn``, library versions) and ``subsample`` (policy and sizes).
    """

    KIND: ClassVar[str] = "projection"

    @property
    def coords(self) -> np.ndarray:
        """``(n, 2)`` coordinates, rows in the order of :attr:`ids`."""
        return self.arrays["coords"]

    @property
    def ids(self) -> list[str]:
        """Record ids of the projected rows."""
        return [str(i) for i in self.arrays["ids"]]


def _n_components(knn: np.ndarray) -> int:
    """Connected components of the (undirected) kNN graph."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n, k = knn.shape
    graph = csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), knn.ravel())), shape=(n, n))
    return int(connected_components(graph, directed=True, connection="weak")[0])


_CACHING = threading.Lock()
_CACHED_MODULES: set[str] = set()


def cache_compiled_umap() -> int:
    """Let numba keep umap-learn's compiled functions on disk, so the ~25 s of compilation a first
    UMAP fit costs is paid once per machine, not once per process (``benchmarks/bench_report.py``).

    umap-learn compiles its kernels (layout optimisation, fuzzy simplicial set, spectral
    initialisation) lazily and, unlike pynndescent's, without ``cache=True``; this switches on the
    same numba cache for every umap dispatcher not compiled yet (``Dispatcher.enable_caching``).
    The compiled code is the same, so the layout is identical (tested); numba keys the cache by
    the source file and the argument types and recompiles when either changes. Where the cache
    cannot be written numba warns and compiles as before. Returns how many functions were switched.
    """
    import sys

    from numba.core.registry import CPUDispatcher

    switched = 0
    with _CACHING:
        for name, module in list(sys.modules.items()):
            if not (name == "umap" or name.startswith("umap.")) or name in _CACHED_MODULES:
                continue
            _CACHED_MODULES.add(name)
            funcs = [f for f in vars(module).values() if isinstance(f, CPUDispatcher)]
            for fn in funcs:
                # numba's cache key does not hold the target options: of a function compiled
                # twice (serial and parallel=True, as umap's layout kernel) only the serial one is
                # cached, so the two never share an entry
                shared = sum(f.py_func is fn.py_func for f in funcs) > 1
                if fn.overloads or (shared and fn.targetoptions.get("parallel")):
                    continue
                if type(fn._cache).__name__ == "NullCache":
                    try:
                        fn.enable_caching()
                        switched += 1
                    except Exception:  # an uncacheable function compiles as before
                        continue
    return switched


def _versions(*names: str) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@ANALYZERS.register(
    "projection",
    summary="UMAP to 2-D with trustworthiness, per-label silhouette and kNN purity, effective ranks",
)
@analyzer_settings
class Projection(Analyzer):
    """UMAP projection to 2-D plus quantitative descriptors of the space and the projection.

    Args:
        n_neighbors: UMAP neighbourhood size.
        min_dist: UMAP minimum distance in the layout.
        metric: UMAP metric (the descriptors use it too when it is euclidean or cosine,
            euclidean otherwise).
        seed: seeds UMAP, the subsample and the descriptor queries (``None``: UMAP runs on all
            threads and is not reproducible).
        pca_dims: project to this many principal axes before UMAP (``None``: no).
        max_records: above this, a stratified subsample of this size is projected.
        n_eval: query records for trustworthiness, silhouettes and purity (all when fewer).
        eval_k: neighbours for trustworthiness and purity.
        knn: ``"auto"`` (exact for euclidean/cosine up to ``n² d ≤ 2.5·10¹¹``, else umap's
            search), ``"exact"`` or ``"umap"``.
        backend: ``"auto"`` (cuML when installed, else umap-learn), ``"umap"`` or ``"cuml"``.
        n_epochs: UMAP epochs (``None``: umap's default for the size).

    Example:
        >>> import ecgprobe  # doctest: +SKIP
        >>> res = Projection(seed=0).run(emb, records)  # doctest: +SKIP
        >>> res.metrics["trustworthiness"], res.table("labels")  # doctest: +SKIP
    """

    name = "projection"

    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"
    seed: int | None = 0
    pca_dims: int | None = None
    max_records: int = 50_000
    n_eval: int = 2000
    eval_k: int = 10
    knn: str = "auto"
    backend: str = "auto"
    n_epochs: int | None = None

    def _validate(self) -> None:
        if not (isinstance(self.n_neighbors, int) and self.n_neighbors >= 2):
            raise ConfigError(f"n_neighbors must be an integer >= 2, got {self.n_neighbors!r}")
        if not self.min_dist >= 0:
            raise ConfigError(f"min_dist must be >= 0, got {self.min_dist!r}")
        if self.metric not in _UMAP_METRICS:
            raise ConfigError(f"metric must be one of {list(_UMAP_METRICS)}, got {self.metric!r}")
        if self.pca_dims is not None and not (isinstance(self.pca_dims, int) and self.pca_dims >= 2):
            raise ConfigError(f"pca_dims must be an integer >= 2 or None, got {self.pca_dims!r}")
        for name in ("max_records", "n_eval", "eval_k"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.knn not in ("auto", "exact", "umap"):
            raise ConfigError(f"knn must be 'auto', 'exact' or 'umap', got {self.knn!r}")
        if self.knn == "exact" and self.metric not in METRICS:
            raise ConfigError(
                f"knn='exact' supports metrics {list(METRICS)}; use knn='umap' for {self.metric!r}"
            )
        if self.backend not in ("auto", "umap", "cuml"):
            raise ConfigError(f"backend must be 'auto', 'umap' or 'cuml', got {self.backend!r}")

    def _run(self, emb: Embeddings, records: RecordSet) -> ProjectionResult:
        n_total = len(emb)
        rng = np.random.default_rng(self.seed)
        notes: list[str] = []
        keys = (
            np.array(["".join(map(str, row)) for row in records.y])
            if records.task == "multilabel"
            else np.zeros(n_total, dtype=int)
        )
        keep = stratified_subsample(keys, self.max_records, rng)
        if len(keep) < n_total:
            notes.append(
                f"projected a seeded subsample of {len(keep)} of {n_total} records, stratified by label "
                "combination; all descriptors refer to it"
            )
        X = emb.X[keep]
        n = len(X)
        if n <= max(self.n_neighbors, 2 * self.eval_k + 1):
            raise AnalysisError(
                f"{n} records are too few for n_neighbors={self.n_neighbors} and eval_k={self.eval_k}; "
                "lower them or use more records"
            )
        spec = desc.spectrum(X)
        spec_std = desc.spectrum(X, standardise=True)
        Xin, metrics = X, {}
        if self.pca_dims is not None and self.pca_dims < X.shape[1]:
            V = spec["components"][:, : self.pca_dims]
            Xin = ((X - spec["mean"]) @ V).astype(np.float32)
            metrics["pca_retained_variance"] = float(spec["explained_variance_ratio"][: self.pca_dims].sum())
        coords, umap_info, fit_s, knn_s = self._fit(Xin, notes)
        dmetric = self.metric if self.metric in METRICS else "euclidean"
        if dmetric != self.metric:
            notes.append(
                f"descriptors use euclidean distances (UMAP metric {self.metric!r} is not supported there)"
            )
        queries = np.sort(rng.choice(n, min(self.n_eval, n), replace=False))
        y = records.y[keep]
        labels = (y > 0).astype(np.uint8) if records.task == "multilabel" else np.zeros((n, 0), np.uint8)
        proj = desc.space_stats(coords, queries, labels, self.eval_k)
        orig = desc.space_stats(X, queries, labels, self.eval_k, metric=dmetric, rank_targets=proj.knn)
        metrics.update(
            trustworthiness=desc.trustworthiness_from(orig.ranks, n, self.eval_k),
            trust_k=self.eval_k,
            n_eval=len(queries),
            participation_ratio=spec["participation_ratio"],
            entropy_rank=spec["entropy_rank"],
            participation_ratio_standardised=spec_std["participation_ratio"],
            entropy_rank_standardised=spec_std["entropy_rank"],
            n_varying_features=spec_std["n_features"],
            mean_cosine=desc.mean_cosine(X),
            n_projected=n,
            n_total=n_total,
        )
        table = self._label_table(records, labels, queries, proj, orig)
        if records.task != "multilabel":
            notes.append("regression target: per-label silhouettes and purity do not apply")
        arrays = self._arrays(records, keep, coords, y, spec, queries)
        params = {
            "umap": umap_info,
            "subsample": {
                "policy": "stratified by label combination, largest-remainder allocation, seeded",
                "n_total": n_total,
                "n_projected": n,
            },
            "descriptor_metric": dmetric,
        }
        return ProjectionResult(
            kind="projection",
            metrics=metrics,
            tables={"labels": table},
            arrays=arrays,
            params=params,
            seed=self.seed,
            notes=notes,
            provenance={"timings": {"fit_s": fit_s, "knn_s": knn_s}},
        )

    # ------------------------------------------------------------------ pieces
    def _fit(self, X: np.ndarray, notes: list[str]) -> tuple[np.ndarray, dict[str, Any], float, float]:
        backend = self.backend
        if backend in ("auto", "cuml"):
            try:
                import cuml  # noqa: F401  (GPU UMAP, optional)
            except ImportError:
                if backend == "cuml":
                    raise DependencyError(
                        "backend='cuml' needs RAPIDS cuML (https://docs.rapids.ai/install); "
                        "or use backend='umap'"
                    ) from None
                backend = "umap"
            else:
                backend = "cuml"
        params = {
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "metric": self.metric,
            "n_components": 2,
            "random_state": self.seed,
            "n_epochs": self.n_epochs,
        }
        t0 = time.perf_counter()
        if backend == "cuml":
            from cuml.manifold import UMAP as CuUMAP

            coords = np.asarray(CuUMAP(**params, output_type="numpy").fit_transform(X), dtype=np.float32)
            info = {**params, "backend": "cuml", "knn": "cuml", "threads": "gpu", **_versions("cuml")}
            return coords, info, time.perf_counter() - t0, 0.0
        try:
            import numba
            import umap
        except ImportError:
            raise DependencyError("the UMAP projection needs umap-learn: pip install umap-learn") from None
        cache_compiled_umap()  # the first fit on this machine compiles; later processes load
        use_exact = self.knn == "exact" or (
            self.knn == "auto" and self.metric in METRICS and len(X) ** 2 * X.shape[1] <= _EXACT_KNN_BUDGET
        )
        knn_s = 0.0
        t0 = time.perf_counter()  # after the (slow, first-time) umap import
        init = "spectral"
        if use_exact:
            idx, dist = exact_knn(X, self.n_neighbors, metric=self.metric, include_self=True)
            params["precomputed_knn"] = (idx, dist)
            knn_s = time.perf_counter() - t0
            n_comp = _n_components(idx)
            if n_comp > 1:
                # umap's spectral initialisation of a disconnected graph solves a degenerate
                # eigenproblem whose solution changes from run to run even with a seed
                init = "pca"
                notes.append(
                    f"the kNN graph has {n_comp} disconnected components: UMAP initialised from PCA (its "
                    "spectral initialisation of disconnected graphs is not reproducible)"
                )
        params["init"] = init
        # with a seed umap runs one thread (and says so in a warning); ask for it explicitly
        n_jobs = 1 if self.seed is not None else -1
        threads = 1 if self.seed is not None else numba.get_num_threads()
        with warnings.catch_warnings():
            # precomputed_knn without an NNDescent index only disables transform(), unused here
            warnings.filterwarnings("ignore", message=".*knn_search_index.*")
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
            reducer = umap.UMAP(**params, n_jobs=n_jobs, low_memory=True)
            coords = np.asarray(reducer.fit_transform(X), dtype=np.float32)
        params.pop("precomputed_knn", None)
        info = {
            **params,
            "backend": "umap-learn",
            "knn": "exact (batched matrix products)"
            if use_exact
            else "umap (pynndescent or exact below 4096)",
            "threads": threads,
            **_versions("umap-learn", "pynndescent", "numba"),
        }
        return coords, info, time.perf_counter() - t0 - knn_s, knn_s

    def _label_table(self, records, labels, queries, proj, orig) -> list[dict[str, Any]]:
        if not labels.shape[1]:
            return []
        n = len(labels)
        n_pos = labels.sum(axis=0)
        pos_q = labels[queries] > 0
        pur_p = desc.label_purity(proj.knn, queries, labels)
        pur_o = desc.label_purity(orig.knn, queries, labels)
        rows = []
        for c, name in enumerate(records.label_names):

            def mean_over(sil, mask=None, c=c):
                v = sil[:, c] if mask is None else sil[mask[:, c], c]
                return float(np.mean(v)) if len(v) and np.isfinite(v).all() else None

            rows.append(
                {
                    "label": name,
                    "n_pos": int(n_pos[c]),
                    "prevalence": float(n_pos[c] / n),
                    "silhouette_embedding": mean_over(orig.silhouette),
                    "silhouette_projection": mean_over(proj.silhouette),
                    "silhouette_pos_embedding": mean_over(orig.silhouette, pos_q),
                    "silhouette_pos_projection": mean_over(proj.silhouette, pos_q),
                    "purity_embedding": pur_o[c],
                    "purity_projection": pur_p[c],
                    "purity_chance": float((n_pos[c] - 1) / (n - 1)) if n_pos[c] else None,
                }
            )
        return rows

    def _arrays(self, records, keep, coords, y, spec, queries) -> dict[str, np.ndarray]:
        arrays = {
            "coords": coords,
            "ids": np.asarray(records.ids[keep], dtype=str),
            "y": y,
            "label_names": np.asarray(records.label_names, dtype=str),
            "explained_variance_ratio": spec["explained_variance_ratio"].astype(np.float32),
            "eval_idx": queries.astype(np.int64),
        }
        meta = records.meta.iloc[keep]
        if "age" in meta.columns:
            import pandas as pd

            arrays["age"] = pd.to_numeric(meta["age"], errors="coerce").to_numpy(dtype=np.float32)
        if "sex" in meta.columns:
            arrays["sex"] = meta["sex"].astype(str).to_numpy(dtype=str)
        return arrays
