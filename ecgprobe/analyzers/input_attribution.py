"""``input_attribution``: which leads and which moments of the ECG drive a probe's decision.

The encoder and the probe's trained linear head form one model, ``logit_c = W_c · enc(x) + b_c``
on the model-ready input ``x`` (leads × samples, after the encoder's preprocessing and
normalisation, which are not differentiated through). For a few example records per label
(positives of the explained split, drawn at random with the seed), the logit of that label is
attributed to every input sample:

- ``ig``: Integrated Gradients (Sundararajan et al. 2017); completeness gives a check: the
  attributions sum to ``f(x) − f(baseline)``, and the gap (convergence delta) is reported.
- ``gradshap``: GradientSHAP (Lundberg & Lee 2017; captum), expected gradients on random points
  between baseline and a noisy copy of the input.
- ``kernelshap``: for encoders without gradients (``encoder.differentiable is False``) — and as
  a cross-check for any — Shapley values of the 12 (or L) leads as players, a lead being
  "absent" when replaced by its baseline. Exact (all ``2**L`` coalitions) when that is cheap
  (L ≤ 8); otherwise estimated from ``n_permutations`` antithetic permutations, each satisfying
  efficiency exactly, with a standard error per value (``lead_attribution_se``).

Baselines (the reference input): ``zeros``; ``mean`` — each lead's mean over the window;
``smooth`` — a low-pass copy (``smooth_hz``). Aggregates for the report: the lead importance of
each label (mean |attribution| per lead, normalised per example to sum 1, averaged over the
examples, with a bootstrap CI over examples) and, for gradient methods, a beat-aligned saliency
profile: QRS complexes are detected on the model-ready input, the saliency ``Σ_leads |attr|``
(relative to its mean over the window, 1 = average) is averaged over beats in a window around R.

Sanity check (model randomisation, Adebayo et al. 2018): the encoder's weights are re-initialised
(the head kept) and the same attributions recomputed; Spearman rank correlations between the
trained and randomised models' lead importances and attribution maps are reported — high values
mean the explanation does not depend on what the model learned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ecgprobe.analyzers._stats import attribution_methods as am
from ecgprobe.analyzers._stats.heads import LinearHead, check_encoder, encoder_from_provenance, resolve_head
from ecgprobe.analyzers._stats.refined_ig import refined_attribution
from ecgprobe.analyzers._stats.sanity import Attribution, randomisation_statistics, randomised_encoder
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.data.record import SPLITS, RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["METHODS", "InputAttribution", "InputAttributionResult", "attribution_mode"]

METHODS = ("auto", "ig", "gradshap", "kernelshap")
attribution_mode = am.attribution_mode


@dataclass
class InputAttributionResult(Result):
    """Result of :class:`InputAttribution`.

    ``C`` labels (``metrics["labels"]``), ``L`` leads (``metrics["leads"]``), ``n`` samples at
    ``metrics["fs"]`` Hz, ``R`` distinct example records, ``K`` (record, label) examples, ``W``
    samples of the beat window.

    Arrays:
        ``lead_importance`` (C, L) — sums to 1 per label; ``lead_importance_ci`` (C, L, 2).
        ``time_s`` (n,): time of each input sample. ``inputs`` (R, L, n): model-ready input of each
        example record; ``baselines`` (R, L, n): its reference input; ``record_ids`` (R,).
        ``r_peaks`` (R, max_beats): detected QRS sample indices, −1 padded.
        ``example_record`` (K,) index into ``inputs``; ``example_label`` (K,) index into labels.
        ``attributions`` (K, L, n) — gradient methods only; ``lead_attributions`` (K, L): signed
        per-lead total (IG/GradSHAP: summed over time; kernelshap: the lead's Shapley value).
        ``logit`` (K,), ``baseline_logit`` (K,), ``convergence_delta`` (K,); ``ig_steps`` (K,): the
        Integrated-Gradients steps each example used (``ig`` only).
        ``beat_offsets_s`` (W,); ``beat_saliency`` (K, W), ``beat_saliency_label`` (C, W),
        ``beat_saliency_lead`` (C, L, W): relative saliency around R (NaN where no complete beat).
        ``attributions`` is absent with ``store_maps=False``.
        Sanity check: ``random_lead_importance`` (C, L), ``random_lead_attributions`` (K, L),
        ``random_attributions`` (K, L, n; gradient methods with ``store_maps``),
        ``sanity_spearman_lead`` (C,), ``sanity_spearman_abs`` / ``sanity_spearman_signed`` (K,):
        Spearman between the trained and randomised models' maps (kernelshap: lead values); descriptive,
        no interval (metrics ``sanity_n_leads``, ``sanity_min_examples_per_label``).
    Tables:
        ``examples``: record_id, label, logit, prob (NaN for regression), baseline_logit, convergence_delta,
        relative_delta, n_beats, spearman_abs, spearman_signed.
        ``lead_importance``: label, lead, importance, ci_low, ci_high (long form for heatmaps).
    """

    KIND: ClassVar[str] = "input_attribution"

    def lead_matrix(self) -> Any:
        """Lead importance as a labels × leads DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            self.arrays["lead_importance"], index=self.metrics["labels"], columns=self.metrics["leads"]
        )


@ANALYZERS.register("input_attribution", summary="lead/time attributions of encoder + probe head")
@analyzer_settings
class InputAttribution(Analyzer):
    """Attributions of the probe's logits to the encoder's input (leads × time).

    Args:
        encoder: the encoder that produced the embeddings; default: re-created from the
            embeddings' provenance (encoders without a checkpoint only).
        probe: a fitted ``LinearProbe`` result, a dict of ``LinearProbe`` settings to fit one, or
            ``None`` (fit with defaults).
        labels: labels to explain (default: all the probe fitted, or ``max_labels`` of them).
        max_labels: without ``labels``, explain only this many evaluated labels, those with the
            most test positives (ties by name); ``None``: every label.
        method: ``"ig"``, ``"gradshap"``, ``"kernelshap"`` (lead Shapley values) or
            ``"auto"`` (``ig`` for differentiable encoders, else ``kernelshap``).
        baseline: ``"zeros"``, ``"mean"`` or ``"smooth"`` (see the module docstring).
        n_examples: example records per label (attribution is expensive; 8 by default).
        split: split the examples come from.
        n_steps: the most Integrated-Gradients steps per example: from 8, doubled until the
            completeness gap is within ``ig_tolerance`` of ``|f(x) − f(baseline)|`` (steps stored).
        ig_tolerance: the relative completeness gap an example may keep (0: always ``n_steps``).
        n_samples: GradientSHAP samples per example.
        stdev: GradientSHAP input noise (model-ready units).
        smooth_hz: cut-off of the ``smooth`` baseline.
        beat_window_ms: the window around each R peak for beat-aligned saliency.
        sanity_check: also attribute with a randomised encoder and report rank correlations.
        store_maps: keep the full attribution maps ``(K, L, n)`` in the result (the heatmap, lead
            importance and beat saliency are computed either way; at 500 Hz, 10 s and 8 examples
            for each of 71 labels the maps take about 140 MB).
        batch_size: inputs per forward pass (IG steps, lead coalitions); lower it for large
            models on long inputs (the IG backward pass holds the activations of a batch).
        seed: seed of example selection, GradientSHAP sampling, permutations and the randomisation.
        lead_shapley: ``"auto"`` (exact when ``2**L`` coalitions cost no more than the sampled
            estimate, else sampled), ``"exact"`` (4096 encoder evaluations per example record for
            12 leads: ~30 s for ``handcrafted`` on one core) or ``"sampled"``.
        n_permutations: permutations of the sampled estimate (antithetic pairs); with 32 about
            350 coalitions per record for 12 leads, ~12x fewer than exact.

    Raises:
        ConfigError: bad settings, or a gradient method for a non-differentiable encoder.
        AnalysisError: an encoder that does not match the embeddings, or an attribution failure
            (naming the label and records).

    Example:
        >>> enc = create_encoder("tiny-test")  # doctest: +SKIP
        >>> res = InputAttribution(encoder=enc, probe=probe_result, n_examples=4).run(emb, records)  # doctest: +SKIP
        >>> res.lead_matrix()  # labels x leads  # doctest: +SKIP
    """

    requires: ClassVar[Mapping[str, str]] = {"probe": "linear_probe"}
    needs_encoder = True

    encoder: Any = None
    probe: Result | Mapping[str, Any] | None = None
    labels: Sequence[str] | None = None
    max_labels: int | None = None
    method: str = "auto"
    baseline: str = "zeros"
    n_examples: int = 8
    split: str = "test"
    n_steps: int = 32
    n_samples: int = 16
    stdev: float = 0.1
    smooth_hz: float = 1.0
    beat_window_ms: tuple[float, float] = (-300.0, 500.0)
    sanity_check: bool = True
    store_maps: bool = True
    batch_size: int = 64
    seed: int = 0
    lead_shapley: str = "auto"
    n_permutations: int = 32
    ig_tolerance: float = 0.01

    def _validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method {self.method!r} is not one of {list(METHODS)}")
        if self.baseline not in am.BASELINES:
            raise ConfigError(f"baseline {self.baseline!r} is not one of {list(am.BASELINES)}")
        if self.split not in SPLITS:
            raise ConfigError(f"split {self.split!r} is not one of {list(SPLITS)}")
        if self.lead_shapley not in ("auto", "exact", "sampled"):
            raise ConfigError(
                f"lead_shapley {self.lead_shapley!r} is not one of ['auto', 'exact', 'sampled']"
            )
        if self.max_labels is not None and (not isinstance(self.max_labels, int) or self.max_labels < 1):
            raise ConfigError(f"max_labels must be an integer >= 1 or None, got {self.max_labels!r}")
        for name in ("n_examples", "n_steps", "n_samples", "batch_size", "n_permutations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.ig_tolerance, (int, float)) or not 0 <= self.ig_tolerance < 1:
            raise ConfigError(
                f"ig_tolerance must be a number in [0, 1), e.g. 0.01; got {self.ig_tolerance!r}"
            )
        if self.stdev < 0 or self.smooth_hz <= 0:
            raise ConfigError(f"stdev must be >= 0 and smooth_hz > 0 (got {self.stdev}, {self.smooth_hz})")
        lo, hi = self.beat_window_ms
        if not lo < 0 < hi:
            raise ConfigError(
                f"beat_window_ms must be (negative, positive) ms around R, got {self.beat_window_ms}"
            )

    def _labels(self) -> list[str] | None:
        """The labels to explain: ``labels``, else the ``max_labels`` evaluated labels of the
        probe with the most test positives (ties by name), else all."""
        if self.labels is not None or self.max_labels is None or not isinstance(self.probe, Result):
            return None if self.labels is None else list(self.labels)
        rows = [r for r in self.probe.tables.get("per_label", []) if r.get("evaluated")]
        rows.sort(key=lambda r: (-(r.get("n_test_pos") or 0), r["label"]))
        return [r["label"] for r in rows[: self.max_labels]] or None

    # ----------------------------------------------------------------- orchestration
    def _run(self, emb: Embeddings, records: RecordSet) -> InputAttributionResult:
        head = resolve_head(self.probe, emb, records, self._labels())
        encoder = self.encoder if self.encoder is not None else encoder_from_provenance(emb)
        check_encoder(encoder, emb)
        method = self.method
        if method == "auto":
            method = "ig" if encoder.differentiable else "kernelshap"
        if method in am.GRADIENT_METHODS and not encoder.differentiable:
            raise ConfigError(
                f"encoder {encoder.name!r} is not differentiable, so {method!r} cannot be used; use method='kernelshap'"
            )
        ex, notes = self._examples(records, head, encoder)
        logit_x, drift = self._logits(encoder, head, ex.x, given=emb.X[ex.pos])
        logit_b, _ = self._logits(encoder, head, ex.base)
        if drift > 1e-3:
            notes.append(
                f"the encoder's embedding of the first window differs from the given embeddings (max relative "
                f"difference {drift:.2g}; sliding windows or another preprocessing?): attributions explain the "
                "head applied to the first window only"
            )
        attr = self._attribute(encoder, head, method, ex)
        C, K = len(head.labels), len(ex.record)
        fs, leads = encoder.spec.fs, list(encoder.spec.leads)
        importance, ci = am.lead_importance(attr.lead_abs(), ex.label, C, self.seed)
        logit, blogit = logit_x[ex.record, ex.label], logit_b[ex.record, ex.label]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(attr.delta) / np.abs(logit - blogit)
        peaks = [am.detect_r_peaks(xr, fs) for xr in ex.x]
        arrays: dict[str, np.ndarray] = {
            "lead_importance": importance,
            "lead_importance_ci": ci,
            "time_s": np.arange(ex.x.shape[-1]) / fs,
            "inputs": ex.x,
            "example_signals_mv": ex.mv,
            "baselines": ex.base,
            "record_ids": np.asarray(records.ids[ex.pos], dtype=str),
            "r_peaks": am.pad_ragged(peaks),
            "example_record": ex.record,
            "example_label": ex.label,
            "lead_attributions": attr.lead,
            "logit": logit,
            "baseline_logit": blogit,
            "convergence_delta": attr.delta,
        }
        if attr.se is not None:
            arrays["lead_attribution_se"] = attr.se
        if attr.steps is not None:
            arrays["ig_steps"] = attr.steps
        n_beats = np.zeros(K, dtype=np.int64)
        if attr.maps is not None:
            offsets = am.beat_offsets(fs, self.beat_window_ms)
            beat, beat_lead, n_beats = am.beat_saliency(attr.maps, [peaks[r] for r in ex.record], offsets)
            if self.store_maps:
                arrays["attributions"] = attr.maps
            arrays["beat_offsets_s"] = offsets / fs
            arrays["beat_saliency"] = beat
            arrays["beat_saliency_label"] = am.label_mean(beat, ex.label, C)
            arrays["beat_saliency_lead"] = am.label_mean(beat_lead, ex.label, C)
        else:
            notes.append(f"{method}: lead-level attributions only (no time resolution, no beat saliency)")
        prob = 1.0 / (1.0 + np.exp(-logit)) if records.task == "multilabel" else np.full(K, np.nan)
        examples = [
            {
                "record_id": str(arrays["record_ids"][ex.record[k]]),
                "label": head.labels[ex.label[k]],
                "logit": logit[k],
                "prob": prob[k],
                "baseline_logit": blogit[k],
                "convergence_delta": attr.delta[k],
                "relative_delta": rel[k],
                "n_beats": int(n_beats[k]),
            }
            for k in range(K)
        ]
        lead_rows = [
            {
                "label": lab,
                "lead": lead,
                "importance": importance[c, j],
                "ci_low": ci[c, j, 0],
                "ci_high": ci[c, j, 1],
            }
            for c, lab in enumerate(head.labels)
            for j, lead in enumerate(leads)
        ]
        metrics: dict[str, Any] = {
            "labels": list(head.labels),
            "leads": leads,
            "fs": fs,
            "n_samples": int(ex.x.shape[-1]),
            "example_fs": float(records.fs),
            "example_leads": list(records.leads),
            "method": method,
            "baseline": self.baseline,
            "n_examples": K,
            "n_records": len(ex.pos),
            "examples_per_label": np.bincount(ex.label, minlength=C).tolist(),
            "max_abs_convergence_delta": float(np.nanmax(np.abs(attr.delta))),
            "lead_shapley": attr.how if method == "kernelshap" else None,
            "lead_shapley_permutations": self.n_permutations if attr.how == "sampled" else None,
            "lead_shapley_max_se": float(np.nanmax(attr.se)) if attr.se is not None else None,
            "median_relative_delta": float(np.nanmedian(rel)) if np.isfinite(rel).any() else None,
            "ig_steps_max": int(attr.steps.max()) if attr.steps is not None and len(attr.steps) else None,
            "top_lead": {
                lab: leads[int(np.nanargmax(importance[c]))]
                for c, lab in enumerate(head.labels)
                if np.isfinite(importance[c]).any()
            },
        }
        if self.sanity_check:
            self._sanity(encoder, head, method, ex, attr, arrays, metrics, notes)
            for row, r_abs, r_signed in zip(
                examples, arrays.get("sanity_spearman_abs", []), arrays.get("sanity_spearman_signed", [])
            ):
                row["spearman_abs"], row["spearman_signed"] = r_abs, r_signed
        return InputAttributionResult(
            kind=InputAttributionResult.KIND,
            metrics=metrics,
            tables={"examples": examples, "lead_importance": lead_rows},
            arrays=arrays,
            params={"encoder": encoder.name, "probe": head.summary},
            provenance={"encoder": encoder.identity()},
            seed=self.seed,
            notes=notes,
        )

    def _examples(self, records: RecordSet, head: LinearHead, encoder: Any) -> tuple[_Examples, list[str]]:
        """Up to ``n_examples`` random positives of the split per label, preprocessed, with baselines."""
        rng = np.random.default_rng(self.seed)
        in_split = records.split == self.split
        notes: list[str] = []
        chosen: list[tuple[int, int]] = []
        for c, label in enumerate(head.labels):
            if records.task == "multilabel" and label in records.label_names:
                cand = np.flatnonzero(in_split & (records.y[:, records.label_names.index(label)] == 1))
                what = "positives"
            else:  # regression targets: any record of the split
                cand = np.flatnonzero(in_split)
                what = "records"
            if len(cand) == 0:
                notes.append(f"label {label!r}: no {what} in the {self.split!r} split; skipped")
                continue
            if len(cand) < self.n_examples:
                notes.append(f"label {label!r}: only {len(cand)} {what} in the {self.split!r} split")
            pick = np.sort(rng.choice(cand, size=min(self.n_examples, len(cand)), replace=False))
            chosen += [(int(p), c) for p in pick]
        if not chosen:
            raise AnalysisError(
                f"no label of {list(head.labels)} has positives in the {self.split!r} split of {records.name!r}; "
                "choose another split or labels"
            )
        pos = np.unique([p for p, _ in chosen])
        where = {int(p): i for i, p in enumerate(pos)}
        raw = records.read(pos)
        x = encoder.preprocess(raw, records.fs, records.leads, window="fit").astype(np.float32)
        return _Examples(
            pos=pos,
            x=x,
            mv=np.asarray(raw[..., : int(round(10 * records.fs))], dtype=np.float32),
            base=am.make_baseline(x, self.baseline, encoder.spec.fs, self.smooth_hz),
            record=np.asarray([where[p] for p, _ in chosen]),
            label=np.asarray([c for _, c in chosen]),
        ), notes

    def _logits(
        self, encoder: Any, head: LinearHead, x: np.ndarray, given: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        """Head logits ``(R, C)`` of the encoder's embedding of ``x`` (and, with ``given``, the max
        relative difference between that embedding and the given one)."""
        with torch.no_grad():
            e = np.concatenate(
                [
                    encoder.embed(x[s : s + self.batch_size]).detach().cpu().numpy().astype(np.float64)
                    for s in range(0, len(x), self.batch_size)
                ]
            )
        drift = 0.0
        if given is not None:
            drift = float(np.abs(e - given).max()) / max(float(np.abs(given).max()), 1e-12)
        return head.logits(e), drift

    def _attribute(self, encoder: Any, head: LinearHead, method: str, ex: _Examples) -> Attribution:
        """Attributions of every example's label logit, by ``method``."""
        K = len(ex.record)
        if method == "kernelshap":
            lead, delta = np.empty((K, ex.x.shape[1])), np.empty(K)
            se, how = np.full((K, ex.x.shape[1]), np.nan), "exact"
            for r in np.unique(ex.record):
                phi, gap, phi_se, how = self._lead_shapley(encoder, head, ex.x[r], ex.base[r], int(r))
                for k in np.flatnonzero(ex.record == r):
                    lead[k], delta[k] = phi[:, ex.label[k]], gap[ex.label[k]]
                    if phi_se is not None:
                        se[k] = phi_se[:, ex.label[k]]
            return Attribution(
                lead=lead, maps=None, delta=delta, se=se if how == "sampled" else None, how=how
            )
        maps = np.empty((K, *ex.x.shape[1:]), dtype=np.float32)
        delta, steps = np.empty(K), np.zeros(K, dtype=np.int64)
        with am.attribution_mode(encoder):
            model = am.HeadedModel(
                encoder, head.W, head.b
            )  # inside: its buffers must not be inference tensors
            for c in np.unique(ex.label):
                ks = np.flatnonzero(ex.label == c)
                try:
                    maps[ks], delta[ks], steps[ks] = refined_attribution(
                        model,
                        ex.x[ex.record[ks]],
                        ex.base[ex.record[ks]],
                        int(c),
                        method=method,
                        max_steps=self.n_steps,
                        tolerance=self.ig_tolerance,
                        n_samples=self.n_samples,
                        stdev=self.stdev,
                        batch_size=self.batch_size,
                        seed=self.seed + int(c),
                    )
                except Exception as exc:
                    raise AnalysisError(
                        f"{method} attribution of label {head.labels[c]!r} failed ({type(exc).__name__}: {exc}); "
                        "the encoder's state was restored"
                    ) from exc
        lead = maps.sum(axis=-1, dtype=np.float64)
        return Attribution(lead=lead, maps=maps, delta=delta, steps=steps if method == "ig" else None)

    def _lead_shapley(
        self, encoder: Any, head: LinearHead, x: np.ndarray, base: np.ndarray, r: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
        """Lead Shapley values ``(L, C)`` of one record (exact, or sampled with standard errors:
        see :func:`~ecgprobe.analyzers._stats.attribution_methods.lead_shapley`), the efficiency gap ``(C,)``, the SEs
        and how they were computed."""

        def value(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return head.logits(encoder.embed(batch).detach().cpu().numpy())

        try:
            phi, se, how = am.lead_shapley(
                value,
                x,
                base,
                mode=self.lead_shapley,
                n_permutations=self.n_permutations,
                seed=self.seed + r,
                batch_size=self.batch_size,
            )
        except FloatingPointError:
            raise AnalysisError(
                f"encoder {encoder.name!r} gives non-finite outputs when leads are replaced by the "
                f"{self.baseline!r} baseline; try baseline='smooth' or 'mean'"
            ) from None
        ends = value(np.stack([x, base]))
        return phi, phi.sum(axis=0) - (ends[0] - ends[1]), se, how

    def _sanity(
        self,
        encoder: Any,
        head: LinearHead,
        method: str,
        ex: _Examples,
        attr: Attribution,
        arrays: dict[str, np.ndarray],
        metrics: dict[str, Any],
        notes: list[str],
    ) -> None:
        """Model-randomisation test: the same attributions with a re-initialised encoder."""
        rand = randomised_encoder(encoder, ex.x[:1], self.seed + 1, notes)
        if rand is None:
            return
        r_attr = self._attribute(rand, head, method, ex)
        extra, facts, note = randomisation_statistics(
            attr, r_attr, ex.label, arrays["lead_importance"], self.seed
        )
        if r_attr.maps is not None and self.store_maps:
            extra["random_attributions"] = r_attr.maps
        arrays.update(extra)
        metrics.update(facts)
        notes.append(note)


# ------------------------------------------------------------------------------ helpers
@dataclass
class _Examples:
    pos: np.ndarray  # (R,) positions of the distinct example records in the RecordSet
    x: np.ndarray  # (R, L, n) model-ready inputs
    mv: np.ndarray  # (R, L_rec, T) the recorded ECGs in mV (first 10 s), for drawing as printed
    base: np.ndarray  # (R, L, n) baselines
    record: np.ndarray  # (K,) example -> row of x
    label: np.ndarray  # (K,) example -> label index
