"""Seeded coverage simulation of the similarity intervals: CKA (linear and RBF), Procrustes and
mutual kNN overlap, through the analyzers as users run them.

Data with a known answer. ``X = Z diag(√D)`` (``Z ~ N(0, I)``, spectrum ``D`` from 1 to 0.05),
``Y = X B + σ E``. Then ``Σxx = D``, ``Σxy = D B``, ``Σyy = BᵀDB + σ²I`` and the population values
have closed forms, computed here (nothing is hard-coded):

- linear CKA ``||Σxy||²_F / (||Σxx||_F ||Σyy||_F)``;
- Procrustes similarity ``||Σxy||_* / sqrt(tr Σxx · tr Σyy)``;
- RBF CKA (fixed bandwidths) has no closed form: it is estimated once from a large independent
  sample (unbiased HSIC averaged over many minibatches);
- mutual kNN overlap depends on ``n`` by definition: its target is its expectation at this
  ``n``, estimated from many independent samples of size ``n``.

Patients: in the ``patients`` scenario every patient has 4 records that share half their
variance (``x = √D (√½ z_patient + √½ z_record)``, same marginal distribution, same population
CKA) and the analyzer gets the dataset's patient ids; ``patients, ignored`` runs the same data
without them, to show what leaving out records instead of patients costs.

For each scenario ``R`` seeded data sets are drawn; the script prints, per method, the coverage
of the target (with its Monte Carlo standard error), the share of intervals that contain their
own estimate, the mean width, the mean estimate and the target, and writes all of it with the
seeds to ``benchmarks/results/coverage_similarity.json``.

Run: ``python benchmarks/coverage_similarity.py [--reps 1000] [--only NAME ...]`` (~10 min on one
core at 1,000 replicates). ``tests/analyzers/test_cka.py`` and ``test_alignment.py`` run a
small version of the same scenarios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecgprobe.analyzers._stats import cka_rbf as rbf
from ecgprobe.analyzers._stats.cka_linear import ratio
from ecgprobe.analyzers.alignment import Alignment, mutual_knn_overlap
from ecgprobe.analyzers.cka import CKA
from ecgprobe.data.record import ArraySource, RecordSet
from ecgprobe.extract.embeddings import Embeddings

RESULTS = Path(__file__).resolve().parent / "results" / "coverage_similarity.json"


@dataclass
class Model:
    """``Y = X B + σ E`` with ``Cov(X) = diag(D)``; ``per_patient`` records share half their variance."""

    dx: int
    dy: int
    sigma2: float
    seed: int = 123
    independent: bool = False
    per_patient: int = 1
    D: np.ndarray = field(init=False)
    B: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.D = np.geomspace(1.0, 0.05, self.dx)
        self.B = np.zeros((self.dx, self.dy)) if self.independent else rng.standard_normal((self.dx, self.dy))
        self.B /= np.sqrt(self.dx)

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Sxx = np.diag(self.D)
        return Sxx, Sxx @ self.B, self.B.T @ Sxx @ self.B + self.sigma2 * np.eye(self.dy)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, patient ids)``."""
        pid = np.arange(n) // self.per_patient

        def noise(d: int) -> np.ndarray:
            if self.per_patient == 1:
                return rng.standard_normal((n, d))
            shared = rng.standard_normal((pid[-1] + 1, d))[pid]
            return np.sqrt(0.5) * shared + np.sqrt(0.5) * rng.standard_normal((n, d))

        X = noise(self.dx) * np.sqrt(self.D)
        Y = X @ self.B + np.sqrt(self.sigma2) * noise(self.dy)
        return X, Y, pid.astype(str)


def population_linear_cka(model: Model) -> float:
    """``||Σxy||²_F / (||Σxx||_F ||Σyy||_F)``."""
    Sxx, Sxy, Syy = model.covariances()
    return float((Sxy**2).sum() / np.sqrt((Sxx**2).sum() * (Syy**2).sum()))


def population_procrustes(model: Model) -> float:
    """``||Σxy||_* / sqrt(tr Σxx tr Σyy)``."""
    Sxx, Sxy, Syy = model.covariances()
    return float(np.linalg.svd(Sxy, compute_uv=False).sum() / np.sqrt(np.trace(Sxx) * np.trace(Syy)))


def population_rbf_cka(model: Model, sigmas: tuple[float, float], n_batches: int, seed: int) -> float:
    """RBF CKA of the distribution: unbiased HSIC averaged over independent batches of 2,000."""
    rng = np.random.default_rng(seed)
    terms = np.zeros(3)
    for _ in range(n_batches):
        X, Y, _ = model.sample(2000, rng)
        K, L = rbf.rbf_gram(X, sigmas[0]), rbf.rbf_gram(Y, sigmas[1])
        terms += (rbf.hsic(K, L, True), rbf.hsic(K, K, True), rbf.hsic(L, L, True))
    return float(ratio(*terms))


def expected_mutual_knn(model: Model, n: int, k: int, n_samples: int, seed: int) -> float:
    """``E[mutual kNN overlap]`` at ``n`` records, from independent samples."""
    rng = np.random.default_rng(seed)
    return float(np.mean([mutual_knn_overlap(*model.sample(n, rng)[:2], k=k)[0] for _ in range(n_samples)]))


def _records(pids: np.ndarray) -> RecordSet:
    """A minimal dataset that carries the patient ids (the analyzers read ids and patients)."""
    n = len(pids)
    ids = [f"r{i}" for i in range(n)]
    return RecordSet(
        source=ArraySource(np.zeros((n, 1, 8), dtype=np.float32)),
        fs=100.0,
        leads=("I",),
        ids=np.array(ids),
        patient_ids=pids,
        label_names=("x",),
        y=np.zeros((n, 1), dtype=np.uint8),
        split=np.array(["test"] * n),
        meta=pd.DataFrame(index=pd.Index(ids, name="id")),
        name="coverage",
    )


@dataclass
class Scenario:
    """One simulated setting: the model, the sample size, the methods and how each is run."""

    name: str
    model: Model
    n: int
    methods: dict[str, dict[str, Any]]  # method -> analyzer settings
    use_patients: bool = False
    note: str = ""


def scenarios(fast: bool = False) -> list[Scenario]:
    """The settings of the simulation (``fast``: smaller populations, for the tests)."""
    lin = {"kernel": "linear"}
    return [
        Scenario(
            "linear",
            Model(16, 12, 0.5),
            500,
            {"cka_debiased": {**lin, "debiased": True}, "cka_biased": {**lin, "debiased": False}},
            note="biased CKA is inflated by O(d/n): its interval covers E[estimate], not the population value",
        ),
        Scenario(
            "independent",
            Model(64, 64, 1.0, independent=True),
            500,
            {"cka_debiased": {**lin, "debiased": True}, "cka_biased": {**lin, "debiased": False}},
            note="population CKA 0 (a degenerate U-statistic): the jackknife is conservative there",
        ),
        Scenario(
            "rbf",
            Model(6, 4, 0.5),
            300,
            {"rbf_cka_debiased": {"kernel": "rbf", "debiased": True, "sigma": 1.0}},
            note="fixed bandwidth sigma=1 for both sides, so the population value is well defined",
        ),
        Scenario("procrustes", Model(4, 4, 0.5), 500, {"alignment": {"k": 10}}),
        Scenario(
            "procrustes_small_n",
            Model(16, 12, 0.5),
            500,
            {"alignment": {"k": 10}},
            note="n/d = 31: Procrustes similarity is biased upward by more than its SE",
        ),
        Scenario(
            "patients",
            Model(16, 12, 0.5, per_patient=4),
            500,
            {"cka_debiased": {**lin, "debiased": True}},
            use_patients=True,
        ),
        Scenario(
            "patients_ignored",
            Model(16, 12, 0.5, per_patient=4),
            500,
            {"cka_debiased": {**lin, "debiased": True}},
            note="the same data, patients not given: records of one patient fall into different groups",
        ),
    ]


def targets(sc: Scenario, fast: bool) -> dict[str, float]:
    """The value each method's interval should cover, computed from the model."""
    out: dict[str, float] = {}
    for method, settings in sc.methods.items():
        if method.startswith("cka"):
            out[method] = population_linear_cka(sc.model)
        elif method.startswith("rbf"):
            s = settings["sigma"]
            out[method] = population_rbf_cka(sc.model, (s, s), 10 if fast else 100, seed=10_001)
        else:
            out["procrustes_similarity"] = population_procrustes(sc.model)
            out["mutual_knn"] = expected_mutual_knn(
                sc.model, sc.n, settings["k"], 200 if fast else 2000, seed=10_002
            )
    return out


def run_scenario(sc: Scenario, reps: int, fast: bool = False, seed0: int = 0) -> dict[str, Any]:
    """Coverage, width and containment of each method's interval over ``reps`` seeded data sets."""
    truth = targets(sc, fast)
    rows: dict[str, list[tuple[float, float, float]]] = {m: [] for m in truth}
    t0 = time.perf_counter()
    ids = [f"r{i}" for i in range(sc.n)]
    for r in range(reps):
        X, Y, pids = sc.model.sample(sc.n, np.random.default_rng(seed0 + r))
        a, b = Embeddings(X=X, ids=ids), Embeddings(X=Y, ids=ids)
        records = _records(pids) if sc.use_patients else None
        for method, settings in sc.methods.items():
            if method == "alignment":
                m = Alignment(**settings, seed=r).run(a, b, records).metrics
                for key in ("procrustes_similarity", "mutual_knn"):
                    rows[key].append((m[key], m[f"{key}_ci_low"], m[f"{key}_ci_high"]))
            else:
                m = CKA(**settings, seed=r).run(a, b, records).metrics
                rows[method].append((m["cka"], m["cka_ci_low"], m["cka_ci_high"]))
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {
        "n": sc.n,
        "dims": [sc.model.dx, sc.model.dy],
        "records_per_patient": sc.model.per_patient,
        "patients_given": sc.use_patients,
        "reps": reps,
        "seeds": [seed0, seed0 + reps - 1],
        "seconds_per_rep": elapsed / reps,
        "note": sc.note,
        "methods": {},
    }
    for method, vals in rows.items():
        est, lo, hi = np.asarray(vals).T
        cover = (lo <= truth[method]) & (truth[method] <= hi)
        out["methods"][method] = {
            "target": truth[method],
            "coverage": float(cover.mean()),
            "coverage_mc_se": float(np.sqrt(cover.mean() * (1 - cover.mean()) / reps)),
            "contains_estimate": float(((lo <= est) & (est <= hi)).mean()),
            "mean_width": float((hi - lo).mean()),
            "mean_estimate": float(est.mean()),
            "sd_estimate": float(est.std(ddof=1)),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--only", nargs="*", help="scenario names (default: all)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    results: dict[str, Any] = {
        "nominal": 0.95,
        "interval": "delete-a-group jackknife, 50 groups, estimate ± t(49) × SE",
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "scenarios": {},
    }
    print(
        f"{'scenario':20s} {'method':22s} {'target':>8s} {'mean est':>9s} {'coverage':>13s} "
        f"{'has est':>8s} {'width':>7s} {'s/rep':>6s}"
    )
    for sc in scenarios():
        if args.only and sc.name not in args.only:
            continue
        res = run_scenario(sc, args.reps)
        results["scenarios"][sc.name] = res
        for method, m in res["methods"].items():
            print(
                f"{sc.name:20s} {method:22s} {m['target']:8.4f} {m['mean_estimate']:9.4f} "
                f"{m['coverage']:7.3f}±{m['coverage_mc_se']:.3f} {m['contains_estimate']:8.3f} "
                f"{m['mean_width']:7.4f} {res['seconds_per_rep']:6.3f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
