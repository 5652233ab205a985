"""``layer_probe``: the linear probe on every extracted layer, for the labels and for physiology.

What each layer of an encoder encodes, read out linearly (the "physiology atlas"):

1. for every layer, :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` on the dataset's
   labels (macro AUROC with its patient-bootstrap interval), and, for every physiology quantity
   of :mod:`ecgprobe.data.physiology` (heart rate, PR, QRS, QT, QTc, axis; measured with
   NeuroKit2 and cached, or PTB-XL+'s published values), the same probe's ridge regression
   (R² and MAE with intervals): one probe per quantity, so that each uses every record where
   that quantity could be measured;
2. the best layer per quantity (highest test value: what the heatmap marks);
3. whether an intermediate layer beats the final one: the intermediate layer with the best
   **validation** score (the probe's own validation AUROC or MSE, so the test split does not
   choose the layer it then judges) against the final layer by the paired patient bootstrap
   of :func:`~ecgprobe.analyzers.paired_bootstrap.paired_bootstrap` (both layers scored on the
   same resampled patients). The verdict is ``"intermediate"`` or ``"final"`` when the
   interval of the difference excludes 0, else ``"inconclusive"``.

:meth:`LayerProbe.run` takes ``{layer: Embeddings}`` (e.g. ``extract(..., layers="all")``) or
one Embeddings (one layer: no comparison).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.bootstrap import DEFAULT_MIN_POSITIVES
from ecgprobe.analyzers._stats.evaluation import check_common
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings, check_finite
from ecgprobe.analyzers.linear_probe import DEFAULT_ALPHAS, DEFAULT_CS, LinearProbe
from ecgprobe.analyzers.paired_bootstrap import paired_bootstrap
from ecgprobe.data.physiology import check_quantity, measure, with_physiology_target
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError, DataError, DependencyError
from ecgprobe.extract.embeddings import Embeddings, align_to_records
from ecgprobe.options import check_instance
from ecgprobe.settings import FINAL_LAYER

__all__ = ["DEFAULT_QUANTITIES", "LABELS_ROW", "LayerProbe", "LayerProbeResult"]

#: The physiology quantities probed by default (QTc is Bazett's).
DEFAULT_QUANTITIES: tuple[str, ...] = ("heart_rate", "pr", "qrs", "qt", "qtc", "axis")
#: The atlas row of the classification probe (the dataset's labels).
LABELS_ROW = "labels (macro AUROC)"
#: Fewest test records with a measured value for a quantity to be probed.
_MIN_TEST = 10


class LayerProbeResult(Result):
    """Result of :class:`LayerProbe` (``kind = "layer_probe"``).

    Schema:
        metrics: ``layers`` (probe order), ``final_layer``, ``rows`` (atlas rows: the labels
            row and the quantities probed), ``metric`` {row: "auroc" or "r2"}, ``best_layer``
            {row: layer}, ``verdict`` {row: "intermediate", "final", "inconclusive" or
            "single_layer"}, ``physiology_source``, ``physiology_quality`` {flag: count},
            ``quantities_skipped`` {quantity: reason}, ``n_test``, ``n_resamples``,
            ``ci_level``, ``ci_method``.
        tables: ``atlas``: row, layer, metric, value, ci_low, ci_high, mae, mae_ci_low,
            mae_ci_high, val_score (validation AUROC, or minus the validation MSE), n_test;
            ``comparison``: row, metric, final_layer, intermediate_layer (chosen on
            validation), value_intermediate, value_final, difference, ci_low, ci_high,
            p_value, verdict, n_test.
        arrays: ``atlas_value``, ``atlas_ci_low``, ``atlas_ci_high`` (rows x layers).
    """

    KIND: ClassVar[str] = "layer_probe"


@ANALYZERS.register(
    "layer_probe",
    summary="linear probe per layer: macro AUROC and physiology R² per layer (the physiology atlas)",
)
@analyzer_settings
class LayerProbe(Analyzer):
    """Linear probe per layer on the labels and on physiology targets (see the module docstring).

    Args:
        quantities: physiology quantities to regress (names of
            :data:`ecgprobe.data.physiology.QUANTITIES`; empty: labels only).
        labels: also probe the dataset's labels (when it has multi-label ones).
        cache_dir: where physiology measurements are cached (``None``: this process only).
        reference: a PTB-XL+ folder whose published values replace the measurements.
        reference_source: ``"12sl"``, ``"unig"`` or ``"ecgdeli"``.
        Cs: C grid of the classification probes.
        alphas: ridge alpha grid of the regressions.
        n_resamples: bootstrap resamples of every interval.
        ci_level: confidence level.
        ci_method: ``"percentile"`` or ``"bca"``.
        min_positives: as :class:`LinearProbe`'s.
        seed: seed of every bootstrap.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (the probes' solver).

    Example:
        >>> layers = ecgprobe.extract(encoder, records, layers="all")  # doctest: +SKIP
        >>> res = LayerProbe().run(layers, records)  # doctest: +SKIP
        >>> res.metrics["best_layer"]["heart_rate"], res.metrics["verdict"]["heart_rate"]  # doctest: +SKIP
    """

    needs_labels: ClassVar[bool] = False
    takes_layers: ClassVar[bool] = True

    quantities: tuple[str, ...] = DEFAULT_QUANTITIES
    labels: bool = True
    cache_dir: str | None = None
    reference: str | None = None
    reference_source: str = "12sl"
    Cs: tuple[float, ...] = DEFAULT_CS
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    n_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile"
    min_positives: int = DEFAULT_MIN_POSITIVES
    seed: int = 0
    device: str = "auto"

    def _validate(self) -> None:
        self.quantities = tuple(check_quantity(q) for q in self.quantities)
        if len(set(self.quantities)) != len(self.quantities):
            raise ConfigError(f"quantities lists a quantity twice: {list(self.quantities)}")
        check_common(self.n_resamples, self.ci_level, 10, self.ci_method, self.min_positives)

    def run(  # type: ignore[override]
        self, embeddings: Embeddings | Mapping[str, Embeddings], records: RecordSet
    ) -> LayerProbeResult:
        """Probe every layer of ``embeddings`` (``{layer: Embeddings}`` or one Embeddings).

        Raises:
            ConfigError: invalid settings, or an empty layer mapping.
            DataError: records without embeddings in some layer (named).
            AnalysisError: nothing to probe (no labels and no measurable quantity).
        """
        if isinstance(embeddings, Embeddings):
            return super().run(embeddings, records)  # type: ignore[return-value]
        t0 = time.perf_counter()
        if not isinstance(embeddings, Mapping) or not embeddings:
            raise ConfigError("embeddings must be an Embeddings or a non-empty {layer: Embeddings} mapping")
        check_instance(records, RecordSet, name="records", what="a RecordSet (from ecgprobe.load_dataset)")
        self._check_settings()
        self._validate()
        layers: dict[str, Embeddings] = {}
        for name, emb in embeddings.items():
            check_instance(emb, Embeddings, name=f"embeddings[{name!r}]", what="an ecgprobe Embeddings")
            layers[str(name)], rs = align_to_records(emb, records)
            check_finite(layers[str(name)])
        result = self._atlas(layers, rs)
        provenance = {
            "embeddings": {
                "layers": list(layers),
                "keys": {k: e.key for k, e in layers.items()},
                **next(iter(layers.values())).provenance,
            },
            "dataset": rs.identity,
            "n_records": len(rs),
        }
        return self._finish(result, t0, provenance)  # type: ignore[return-value]

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        return self._atlas({emb.layer or FINAL_LAYER: emb}, records)

    # ------------------------------------------------------------------ the mathematics
    def _probe(self, **extra: Any) -> LinearProbe:
        shared = {
            "n_resamples": self.n_resamples,
            "ci_level": self.ci_level,
            "ci_method": self.ci_method,
            "min_positives": self.min_positives,
            "seed": self.seed,
            "device": self.device,
        }
        return LinearProbe(**shared, **extra)

    def _targets(self, records: RecordSet, notes: list[str]) -> tuple[dict[str, RecordSet], dict, dict]:
        """The RecordSets to probe per atlas row, the quantities skipped and the physiology facts."""
        rows: dict[str, RecordSet] = {}
        skipped: dict[str, str] = {}
        facts: dict[str, Any] = {"physiology_source": None, "physiology_quality": {}}
        if self.labels and records.task == "multilabel" and records.label_names:
            rows[LABELS_ROW] = records
        if not self.quantities:
            return rows, skipped, facts
        try:
            table = measure(
                records,
                cache_dir=self.cache_dir,
                reference=self.reference,
                reference_source=self.reference_source,
            )
        except DependencyError as exc:
            notes.append(f"physiology quantities not probed: {exc}")
            return rows, dict.fromkeys(self.quantities, str(exc)), facts
        facts["physiology_source"] = ", ".join(sorted({str(s) for s in table["source"]}))
        facts["physiology_quality"] = {str(k): int(v) for k, v in table["quality"].value_counts().items()}
        test = records.split == "test"
        for q in self.quantities:
            n_test = int(np.isfinite(table[q].to_numpy(dtype=float)[test]).sum())
            if n_test < _MIN_TEST:
                skipped[q] = f"only {n_test} test records with a measured value (needs {_MIN_TEST})"
                continue
            rows[q] = with_physiology_target(records, q, table=table)
        return rows, skipped, facts

    def _atlas(self, layers: dict[str, Embeddings], records: RecordSet) -> LayerProbeResult:
        notes: list[str] = []
        self._layers = layers
        targets, skipped, facts = self._targets(records, notes)
        if not targets:
            raise AnalysisError(
                "layer_probe has nothing to probe: the dataset has no multi-label labels and no "
                f"physiology quantity could be measured ({skipped or 'quantities=()'})"
            )
        names = list(layers)
        final = FINAL_LAYER if FINAL_LAYER in layers else names[-1]
        atlas, comparison = [], []
        shape = (len(targets), len(names))
        value, low, high = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
        best, verdict, metric_of = {}, {}, {}
        n_test = 0
        for r, (row, rs) in enumerate(targets.items()):
            metric = "auroc" if row == LABELS_ROW else "r2"
            metric_of[row] = metric
            probe = self._probe(Cs=self.Cs) if metric == "auroc" else self._probe(alphas=self.alphas)
            results = {}
            for c, layer in enumerate(names):
                try:
                    res = probe.run(layers[layer], rs)
                except (AnalysisError, DataError) as exc:
                    notes.append(f"{row} on layer {layer}: not probed ({exc})")
                    continue
                results[layer] = res
                entry = _atlas_row(row, layer, metric, res)
                atlas.append(entry)
                value[r, c], low[r, c], high[r, c] = entry["value"], entry["ci_low"], entry["ci_high"]
                n_test = max(n_test, int(res.metrics["n_test"]))
            if not results:
                skipped[row] = "no layer could be probed"
                continue
            best[row] = max(results, key=lambda k: _finite(results[k].metrics[_headline(metric)]))
            cmp = self._compare(row, metric, results, final)
            verdict[row] = cmp["verdict"]
            comparison.append(cmp)
        rows = list(targets)
        return LayerProbeResult(
            kind=LayerProbeResult.KIND,
            metrics={
                "layers": names,
                "final_layer": final,
                "rows": rows,
                "metric": metric_of,
                "best_layer": best,
                "verdict": verdict,
                **facts,
                "quantities_skipped": skipped,
                "n_test": n_test,
                "n_resamples": int(self.n_resamples),
                "ci_level": float(self.ci_level),
                "ci_method": self.ci_method,
            },
            tables={"atlas": atlas, "comparison": comparison},
            arrays={"atlas_value": value, "atlas_ci_low": low, "atlas_ci_high": high},
            seed=int(self.seed),
            notes=notes,
        )

    def _same_as_final(self, layer: str, final: str) -> bool:
        # e.g. a ResNet's last stage pooled *is* its embedding: comparing it with itself says nothing
        a, b = self._layers[layer].X, self._layers[final].X
        return a.shape == b.shape and bool(np.array_equal(a, b))

    def _compare(self, row: str, metric: str, results: dict[str, Result], final: str) -> dict[str, Any]:
        """The validation-chosen intermediate layer against the final one, paired bootstrap."""
        out: dict[str, Any] = {"row": row, "metric": metric, "final_layer": final}
        inter = [k for k in results if k != final and not self._same_as_final(k, final)]
        if final not in results or not inter:
            out.update(intermediate_layer=None, verdict="single_layer")
            return out
        chosen = max(inter, key=lambda k: _val_score(results[k], metric))
        cmp = paired_bootstrap(
            results[chosen],
            results[final],
            metric=metric,
            n_resamples=int(self.n_resamples),
            seed=int(self.seed),
            ci_level=float(self.ci_level),
            ci_method=self.ci_method,
            min_positives=int(self.min_positives),
        ).metrics
        lo, hi = cmp["difference_ci"]
        decided = lo is not None and hi is not None and (lo > 0 or hi < 0)
        out.update(
            intermediate_layer=chosen,
            value_intermediate=cmp["value_a"],
            value_final=cmp["value_b"],
            difference=cmp["difference"],
            ci_low=lo,
            ci_high=hi,
            p_value=cmp["p_value"],
            verdict=("intermediate" if lo > 0 else "final") if decided else "inconclusive",
            n_test=cmp["n_test"],
        )
        return out


def _headline(metric: str) -> str:
    return "macro_auroc" if metric == "auroc" else "r2"


def _finite(x: Any) -> float:
    return float(x) if x is not None and np.isfinite(x) else -np.inf


def _val_score(res: Result, metric: str) -> float:
    """Higher is better: mean validation AUROC of the chosen C per label, or minus the
    validation MSE of the chosen alpha."""
    if metric == "auroc":
        vals = [r.get("val_auroc") for r in res.tables.get("per_label", [])]
        vals = [v for v in vals if v is not None and np.isfinite(v)]
        return float(np.mean(vals)) if vals else -np.inf
    grid = np.asarray(res.arrays["val_mse_grid"], dtype=float)
    return -float(np.nanmin(grid)) if grid.size else -np.inf


def _atlas_row(row: str, layer: str, metric: str, res: Result) -> dict[str, Any]:
    m = res.metrics
    key = _headline(metric)
    lo, hi = m.get(f"{key}_ci") or (None, None)
    entry = {
        "row": row,
        "layer": layer,
        "metric": metric,
        "value": m[key],
        "ci_low": lo,
        "ci_high": hi,
        "val_score": _val_score(res, metric),
        "n_test": int(m["n_test"]),
    }
    mae = m.get("mae_ci") or (None, None)
    entry.update(mae=m.get("mae"), mae_ci_low=mae[0], mae_ci_high=mae[1])
    return entry
