"""Centred kernel alignment (CKA): how similar two representations of the same records are.

CKA (Kornblith et al. 2019) is ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` for Gram matrices
``K``, ``L`` of the two representations; it is invariant to orthogonal transforms and isotropic
scaling of either side, but not to general invertible linear maps.

- :func:`linear_cka` uses the feature-space identity ``HSIC ∝ ||ỸᵀX̃||²_F`` on column-centred
  ``X̃``, ``Ỹ`` — only ``d×d`` products, never an ``n×n`` Gram matrix (``n = 20,000`` would need
  3.2 GB per Gram in float64, and float32 Gram matrices give wrong CKA at that size because
  centring them cancels most of their digits). Centring is done in float64; with
  ``precision="mixed"`` (default) the products run in float32 and are accumulated in float64
  over row chunks (agreement with a float64 Gram computation to ~1e-7, see
  ``benchmarks/bench_cka.py``), with ``"float64"`` everything is float64.
- ``debiased=True`` uses the unbiased HSIC estimator of Song et al. (2012), as in the debiased
  CKA of Nguyen et al. (2021): ≈ 0 for independent representations at any ``n``, where biased
  CKA is inflated at small ``n`` or large ``d``.
- :func:`rbf_cka`: Gaussian kernels with the median-heuristic bandwidth; exact up to
  ``max_exact_n`` records, beyond that the minibatch estimator of Nguyen et al. (2021)
  (see :mod:`ecgprobe.analyzers._stats.cka_rbf`).

The :class:`CKA` analyzer (``"cka"``, alias ``"layer_cka"``) compares one embedding set with
another, or every layer of one encoder with every layer of another (or of itself), as a
matrix computed from a few large products over the concatenated layers.

Uncertainty: a **delete-a-group jackknife interval** (see :mod:`ecgprobe.analyzers._stats.jackknife`),
not a permutation p-value. The question users ask is "how similar, and is A closer to B than to
C" — an interval answers it, whereas a permutation test of "CKA > 0 under independence" is
trivially significant for two encoders of the same ECGs. Patients (records without a dataset)
are put into ``n_blocks`` random groups; each replicate recomputes CKA exactly without one
group (linear: from per-group statistics, ``O(m³)`` each); minibatch RBF CKA leaves out one
minibatch at a time; bandwidths stay fixed. (A record bootstrap is invalid for the unbiased
HSIC: copies of a record bring back the self-similarity terms it removes.) The interval is
centred on the estimate, so it covers the population CKA only for the unbiased estimator:
debiased CKA, the default, reaches nominal coverage in ``benchmarks/coverage_similarity.py``;
biased CKA is inflated by ``O(d/n)`` (0.09 on independent data, ``n = 500``, ``d = 64``) and its
interval covers the value expected at this ``n``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ecgprobe.analyzers._stats import cka_linear as lin
from ecgprobe.analyzers._stats import cka_rbf as rbf
from ecgprobe.analyzers._stats import jackknife as jk
from ecgprobe.analyzers._stats.bootstrap import check_resampling
from ecgprobe.analyzers._stats.cka_estimators import (
    bandwidths,
    cka_from_grams,
    linear_cka,
    precision_dtype,
    rbf_cka,
)
from ecgprobe.analyzers.base import (
    ANALYZERS,
    PairwiseAnalyzer,
    Result,
    analyzer_settings,
    check_finite,
    check_ids_match,
)
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ArgumentTypeError, ConfigError
from ecgprobe.extract.embeddings import Embeddings, align_to_records

__all__ = ["CKA", "CKAResult", "LayerCKA", "cka_from_grams", "linear_cka", "rbf_cka"]


class CKAResult(Result):
    """CKA between two representations, or the layer-by-layer CKA matrix.

    Schema:
        metrics: ``n_records``, ``n_replicates`` (jackknife replicates computed; results
            before the jackknife hold ``n_boot``), and for a single pair ``cka``,
            ``cka_ci_low``, ``cka_ci_high``, ``cka_se``.
        tables: ``pairs`` — one row per layer pair: ``layer_a``, ``layer_b``, ``cka``,
            ``ci_low``, ``ci_high``, ``se``.
        arrays: ``cka`` ``(p, q)`` float64 (rows: layers of A, columns: layers of B),
            ``ci_low``/``ci_high``/``se`` ``(p, q)``, ``replicates`` ``(m, p, q)`` float32
            leave-one-group-out values (older results: ``boot``), ``layers_a``/``layers_b``.
        params: the settings, plus ``estimator``, ``interval`` (the method, in words),
            ``n_blocks_used`` (groups), ``resampling_unit`` (``"patient"`` or ``"record"``),
            ``sigmas_a``/``sigmas_b`` (RBF bandwidths) and ``within`` (one encoder compared
            with itself).
    """

    KIND: ClassVar[str] = "cka"

    @property
    def layers_a(self) -> list[str]:
        """Layer names of side A (matrix rows)."""
        return [str(s) for s in self.arrays["layers_a"]]

    @property
    def layers_b(self) -> list[str]:
        """Layer names of side B (matrix columns)."""
        return [str(s) for s in self.arrays["layers_b"]]

    @property
    def matrix(self) -> pd.DataFrame:
        """The CKA matrix with layer names as index and columns."""
        return pd.DataFrame(
            self.arrays["cka"],
            index=pd.Index(self.layers_a, name="a"),
            columns=pd.Index(self.layers_b, name="b"),
        )


def _as_layers(x: Embeddings | Mapping[str, Embeddings], side: str) -> dict[str, Embeddings]:
    if isinstance(x, Embeddings):
        return {x.layer: x}
    if isinstance(x, Mapping) and x and all(isinstance(v, Embeddings) for v in x.values()):
        return {str(k): v for k, v in x.items()}
    raise ArgumentTypeError(
        f"side {side} must be an Embeddings or a non-empty dict of layer name -> Embeddings, "
        f"got {type(x).__name__}"
    )


@ANALYZERS.register(
    "cka",
    aliases=("layer_cka",),
    pairwise=True,
    summary="centred kernel alignment between two encoders, or layer by layer, with jackknife CIs",
)
@analyzer_settings
class CKA(PairwiseAnalyzer):
    """CKA between two embedding sets of the same records, or the layer-by-layer CKA matrix.

    Args:
        kernel: ``"linear"`` (feature space, any ``n``) or ``"rbf"`` (Gram matrices).
        debiased: unbiased HSIC (Song et al. 2012; Nguyen et al. 2021); the default, since only
            its interval covers the population CKA (see the module doc).
        n_resamples: ``0``: no interval; any positive value: the jackknife interval (its replicate
            count is the number of groups, ``n_blocks``; the one name of this setting across
            analyzers, saved as ``n_boot`` by older versions).
        n_blocks: jackknife groups of patients (capped by the records, the patients and, for
            linear CKA, memory: ``n_blocks × d_a × d_b`` floats per layer pair within 512 MiB;
            recorded).
        ci_level: confidence level.
        seed: seeds group assignment, bandwidth subsample and minibatches.
        precision: ``"mixed"`` or ``"float64"`` (linear kernel; see the module doc).
        sigma: RBF bandwidth (``None``: median heuristic per layer).
        batch_size: RBF minibatch size (``None``: exact up to ``max_exact_n`` records).
        max_exact_n: RBF records computed exactly from full Gram matrices.

    Example:
        >>> import numpy as np
        >>> from ecgprobe.extract.embeddings import Embeddings
        >>> rng = np.random.default_rng(0)
        >>> ids = [f"r{i}" for i in range(300)]
        >>> a = Embeddings(rng.standard_normal((300, 8)), ids)
        >>> b = Embeddings(a.X @ np.linalg.qr(rng.standard_normal((8, 8)))[0], ids)
        >>> round(CKA(n_resamples=50).run(a, b).metrics["cka"], 6)
        1.0
    """

    name = "cka"

    needs_labels = False
    takes_layers = True

    kernel: str = "linear"
    debiased: bool = True
    n_resamples: int = 200
    n_blocks: int = 50
    ci_level: float = 0.95
    seed: int = 0
    precision: str = "mixed"
    sigma: float | None = None
    batch_size: int | None = None
    max_exact_n: int = 5000

    def _validate(self) -> None:
        if self.kernel not in ("linear", "rbf"):
            raise ConfigError(f"kernel must be 'linear' or 'rbf', got {self.kernel!r}")
        precision_dtype(self.precision)
        check_resampling(self.n_resamples, self.ci_level, least=0)
        if not (isinstance(self.n_blocks, int) and self.n_blocks >= 2):
            raise ConfigError(f"n_blocks must be an integer >= 2, got {self.n_blocks!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ConfigError(f"sigma must be positive or None, got {self.sigma!r}")
        if self.batch_size is not None and self.batch_size < 6:
            raise ConfigError(f"batch_size must be >= 6 or None, got {self.batch_size!r}")

    def run(  # type: ignore[override]
        self,
        a: Embeddings | Mapping[str, Embeddings],
        b: Embeddings | Mapping[str, Embeddings] | None = None,
        records: RecordSet | None = None,
    ) -> CKAResult:
        """Compare ``a`` with ``b`` (or every layer of ``a`` with every other when ``b`` is None).

        Args:
            a: one Embeddings, or ``{layer: Embeddings}`` of one encoder.
            b: the same for the other encoder; ``None`` compares ``a`` with itself.
            records: optional dataset: embeddings are then matched to its records by id (and
                restricted to them) and the jackknife leaves out whole patients; without it
                all layers must hold identical ids in identical order and each record is its
                own patient.

        Raises:
            ConfigError: invalid settings or inputs.
            DataError: ids differ between layers or sides (listing the mismatch), rows are
                shuffled, or values are not finite.
            AnalysisError: a representation without variance.
        """
        t0 = time.perf_counter()
        self._check_settings()
        self._validate()
        side_a = _as_layers(a, "a")
        within = b is None or b is a
        side_b = side_a if within else _as_layers(b, "b")
        if records is not None:
            side_a = {k: align_to_records(e, records)[0] for k, e in side_a.items()}
            side_b = side_a if within else {k: align_to_records(e, records)[0] for k, e in side_b.items()}
        ref = next(iter(side_a.values()))
        for emb in [*side_a.values(), *side_b.values()]:
            check_ids_match(ref, emb)
            check_finite(emb)
        patients = None if records is None else np.asarray(records.patient_ids, dtype=str)
        result = self._compare(side_a, side_b, within, patients)
        provenance: dict[str, Any] = {
            side: {
                "layers": list(layers),
                "keys": {k: e.key for k, e in layers.items()},
                "dims": {k: e.dim for k, e in layers.items()},
                **next(iter(layers.values())).provenance,
            }
            for side, layers in (("a", side_a), ("b", side_b))
        }
        provenance["n_records"] = len(ref)
        if records is not None:
            provenance["dataset"] = records.identity
        return self._finish(result, t0, provenance)

    def _run(self, a: Embeddings, b: Embeddings, records: RecordSet | None) -> Result:
        return self._compare({a.layer: a}, {b.layer: b}, a is b, jk.patients_of(a.ids, records))

    # ------------------------------------------------------------------ the mathematics
    def _compare(
        self,
        side_a: dict[str, Embeddings],
        side_b: dict[str, Embeddings],
        within: bool,
        patients: np.ndarray | None = None,
    ) -> CKAResult:
        names_a, names_b = list(side_a), list(side_b)
        mats_a = [e.X for e in side_a.values()]
        mats_b = mats_a if within else [e.X for e in side_b.values()]
        n = len(mats_a[0])
        min_n = 6 if (self.debiased or self.kernel == "rbf") else 2
        if n < min_n:
            raise AnalysisError(f"CKA needs at least {min_n} records here, got {n}")
        rng = np.random.default_rng(self.seed)
        notes: list[str] = []
        params: dict[str, Any] = {"within": within}
        if self.kernel == "linear":
            point, reps = self._linear(mats_a, mats_b, names_a, names_b, within, rng, patients, params, notes)
        else:
            point, reps = self._rbf(mats_a, mats_b, within, rng, patients, params, notes)
        if np.isnan(point).any():
            bad = [(names_a[i], names_b[j]) for i, j in zip(*np.nonzero(np.isnan(point)))]
            notes.append(
                f"CKA is undefined (NaN) for {bad[:5]}: a layer without variance across these records"
            )
        lo, hi, se = (np.full_like(point, np.nan) for _ in range(3))
        if reps is not None and len(reps) >= 2:
            lo, hi, se = jk.jackknife_interval(point, reps, self.ci_level)
            lo, hi = np.clip(lo, -1.0, 1.0), np.clip(hi, -1.0, 1.0)  # |CKA| <= 1 (Cauchy-Schwarz)
            if len(reps) < 20:
                notes.append(f"jackknife over only {len(reps)} groups: the interval is coarse")
        rows = [
            {
                "layer_a": la,
                "layer_b": lb,
                "cka": point[i, j],
                "ci_low": lo[i, j],
                "ci_high": hi[i, j],
                "se": se[i, j],
            }
            for i, la in enumerate(names_a)
            for j, lb in enumerate(names_b)
        ]
        metrics: dict[str, Any] = {"n_records": n, "n_replicates": 0 if reps is None else len(reps)}
        if point.shape == (1, 1):
            metrics.update(cka=point[0, 0], cka_ci_low=lo[0, 0], cka_ci_high=hi[0, 0], cka_se=se[0, 0])
        arrays = {
            "cka": point,
            "ci_low": lo,
            "ci_high": hi,
            "se": se,
            "layers_a": np.asarray(names_a, dtype=str),
            "layers_b": np.asarray(names_b, dtype=str),
        }
        if reps is not None:
            arrays["replicates"] = reps.astype(np.float32)
        return CKAResult(
            kind="cka",
            metrics=metrics,
            tables={"pairs": rows},
            arrays=arrays,
            params=params,
            seed=self.seed,
            notes=notes,
        )

    def _plan(self, n: int, m: int, rng, patients, params) -> jk.GroupPlan:
        plan = jk.group_plan(n, m, rng, patients)
        _describe(params, plan.m, plan.unit, f"groups of {plan.unit}s")
        return plan

    def _linear(self, mats_a, mats_b, names_a, names_b, within, rng, patients, params, notes):
        dt = precision_dtype(self.precision)
        n = len(mats_a[0])
        params["estimator"] = (
            f"feature-space linear CKA ({'unbiased' if self.debiased else 'biased'} HSIC), centring in "
            f"float64, products in {'float32 accumulated in float64' if dt is np.float32 else 'float64'}"
        )
        cap = lin.max_blocks(
            [m.shape[1] for m in mats_a], [m.shape[1] for m in mats_b], np.dtype(dt).itemsize
        )
        m = min(self.n_blocks, n, cap)
        if self.n_resamples == 0 or m < 2:
            if self.n_resamples:
                notes.append("no interval: the layers are too wide for the group statistics' memory budget")
            A = lin.make_side(names_a, mats_a, dt)
            B = A if within else lin.make_side(names_b, mats_b, dt)
            return lin.point_cka(A, B, within, self.debiased), None
        if m < self.n_blocks and m < n:
            notes.append(f"jackknife with {m} groups instead of {self.n_blocks} (memory budget)")
        plan = self._plan(n, m, rng, patients, params)
        A = lin.make_side(names_a, mats_a, dt, order=plan.order)
        B = A if within else lin.make_side(names_b, mats_b, dt, order=plan.order)
        return lin.replicate_cka(A, B, within, self.debiased, plan.slices, jk.leave_one_out_weights(plan.m))

    def _rbf(self, mats_a, mats_b, within, rng, patients, params, notes):
        n = len(mats_a[0])
        sig_a = [bandwidths(self.sigma, M, M, rng)[0] for M in mats_a]
        sig_b = sig_a if within else [bandwidths(self.sigma, M, M, rng)[0] for M in mats_b]
        params.update(sigmas_a=sig_a, sigmas_b=sig_b)
        exact = self.batch_size is None and n <= self.max_exact_n
        if not exact and not self.debiased:
            raise ConfigError(
                f"with n={n} records (> max_exact_n={self.max_exact_n}, or batch_size set) RBF CKA uses "
                "the minibatch estimator, which needs debiased=True"
            )
        if exact:
            params["estimator"] = f"exact RBF CKA ({'unbiased' if self.debiased else 'biased'} HSIC)"
            if self.n_resamples:
                plan = self._plan(n, min(self.n_blocks, n), rng, patients, params)
                W = 1.0 - np.eye(plan.m)[:, plan.membership(n)].T  # (n, m): 0 for the group left out
            else:
                W = np.ones((n, 0))
            point, reps = rbf.exact_matrix(mats_a, mats_b, sig_a, sig_b, within, self.debiased, W)
            return point, reps if self.n_resamples else None
        bs = self.batch_size or 1024
        batches = rbf.minibatches(n, bs, rng, patients)
        params["estimator"] = (
            f"minibatch RBF CKA (unbiased HSIC averaged over {len(batches)} batches of ~{n // len(batches)} "
            "records, whole patients per batch)"
        )
        V = jk.leave_one_out_weights(len(batches)) if self.n_resamples else np.ones((0, len(batches)))
        point, reps = rbf.minibatch_matrix(mats_a, mats_b, sig_a, sig_b, within, batches, V)
        if not self.n_resamples or len(batches) < 2:
            return point, None
        unit = "patient" if patients is not None and len(set(patients)) < n else "record"
        _describe(params, len(batches), unit, "minibatches")
        return point, reps


def _describe(params: dict[str, Any], m: int, unit: str, groups: str) -> None:
    """Record how the interval was made."""
    params.update(
        n_blocks_used=m,
        resampling_unit=unit,
        interval=f"delete-a-group jackknife, {m} {groups}: estimate ± t({m - 1}) × SE",
    )


#: The layer-by-layer form of :class:`CKA` (same analyzer: pass ``{layer: Embeddings}`` dicts).
LayerCKA = CKA
