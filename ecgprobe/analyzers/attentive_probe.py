"""The attentive probe: what an attention-pooling read-out of a frozen encoder's *tokens* can
predict, and whether it beats the linear probe on the same records.

Protocol (nothing fitted ever sees a test record):

1. the input is a token sequence per record, ``extract(encoder, records, tokens=max_tokens)``
   (rows ``T' * D``, :meth:`~ecgprobe.extract.embeddings.Embeddings.tokens`). Given pooled
   embeddings and ``encoder=`` (as a study's workflow passes it: ``analyses: {attentive_probe:
   {}}``), the probe extracts the encoder's tokens itself (``max_tokens``, the official windows,
   cached under ``cache_dir`` when set). Pooled embeddings without an encoder are taken as
   sequences of one token, where attention has nothing to choose (a note says so, and the
   comparison then measures a small MLP head against the linear one);
2. every token dimension is standardised with the mean and standard deviation of the *train*
   split's tokens;
3. the head of :mod:`ecgprobe.analyzers._stats.attentive_head` (one learned query, one
   cross-attention block, LayerNorm, a linear classifier; V-JEPA's frozen-evaluation attentive
   pooler) is trained with BCE and AdamW on train; the *epoch* is chosen on the validation
   split by macro AUROC with early stopping (``patience``);
4. F1 thresholds are chosen on validation, then test is evaluated once, with the
   patient-bootstrap intervals of the linear probe (same schema, via
   :func:`~ecgprobe.analyzers._stats.evaluation.evaluate_probe`);
5. the reference: a :class:`~ecgprobe.analyzers.linear_probe.LinearProbe` on the *mean* of the
   same tokens (the pooled embedding those tokens give), and the difference attentive - linear
   in macro AUROC with a paired patient bootstrap on the same test records
   (:func:`~ecgprobe.analyzers.paired_bootstrap.paired_bootstrap`). A winner is named only when
   the interval excludes 0; otherwise the comparison is "inconclusive".

Multi-label targets only (regression: use ``linear_probe``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers._stats.attentive_head import fit_attentive_head
from ecgprobe.analyzers._stats.bootstrap import DEFAULT_MIN_POSITIVES
from ecgprobe.analyzers._stats.evaluation import check_common, evaluate_probe
from ecgprobe.analyzers._stats.metrics import rank_metrics
from ecgprobe.analyzers._stats.probe_data import fit_scaler, fittable_targets, split_data
from ecgprobe.analyzers._stats.solvers import resolve_device
from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.analyzers.linear_probe import DEFAULT_CS, LinearProbe
from ecgprobe.analyzers.paired_bootstrap import paired_bootstrap
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["AttentiveProbe", "AttentiveProbeResult"]


class AttentiveProbeResult(Result):
    """Result of :class:`AttentiveProbe` (``kind = "attentive_probe"``).

    Schema: the multi-label schema of
    :class:`ecgprobe.analyzers.linear_probe.LinearProbeResult` (per-label and macro metrics with
    patient-bootstrap intervals, ``test_ids``, ``test_scores``, ...) without the linear head, plus:
        metrics:
            ``sequence`` (whether the input held token sequences), ``n_tokens``, ``token_dim``,
            ``max_tokens`` (the extraction setting, ``None`` for pooled input), ``token_layer``,
            ``tokens_from`` ("embeddings" or "encoder": extracted by the probe itself);
            ``epochs_run``, ``best_epoch``, ``stopped_early``, ``best_val_macro_auroc``,
            ``n_parameters``, ``device``, ``threads`` (CPU threads of the fit: the same seed
            gives the same numbers on the same device and thread count); with ``compare_linear``: ``linear_macro_auroc`` (+
            ``_ci``, the linear probe on the mean of the same tokens, C chosen per label on
            val), ``difference_vs_linear`` (attentive - linear, macro AUROC over the labels
            both headline), ``difference_vs_linear_ci``, ``difference_vs_linear_p``,
            ``labels_compared``, ``comparison`` ("attentive better", "linear better" or
            "inconclusive (n_test=..., ...)").
        tables: ``per_label`` (as the linear probe's, ``C`` absent); ``vs_linear``: label,
            attentive, linear, difference, ci_low, ci_high, flagged.
        arrays: ``val_macro_auroc_history`` (epochs,), ``train_loss_history`` (epochs,),
            ``test_attention`` (N_test x T': the query's attention over the tokens, mean over
            heads), ``scaler_mean`` / ``scaler_scale`` (D,), ``difference_replicates`` (B,), and
            the evaluation arrays of the linear probe's schema.
    """

    KIND: ClassVar[str] = "attentive_probe"


@ANALYZERS.register(
    "attentive_probe",
    summary="attention-pooling probe over token sequences, epoch chosen on val, paired vs the linear probe",
)
@analyzer_settings
class AttentiveProbe(Analyzer):
    """Attentive probe of a frozen encoder's tokens (see the module docstring for the protocol).

    Args:
        n_heads: attention heads of the cross-attention (must divide the token width).
        mlp_ratio: hidden width of the block's MLP as a multiple of the token width (V-JEPA: 4).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: records per optimisation step.
        max_epochs: epochs at most.
        patience: epochs without a strict improvement of the validation macro AUROC before
            training stops (the best epoch's weights are kept).
        compare_linear: also fit the linear probe on the mean of the same tokens and report the
            paired difference.
        Cs: C grid of that linear probe.
        n_resamples: bootstrap resamples of every interval.
        ci_level: confidence level.
        ci_method: ``"percentile"`` or ``"bca"``.
        min_positives: labels with fewer positive (or negative) test patients are flagged and
            left out of the headline macros.
        n_bins: bins of the calibration error and reliability diagram.
        seed: seed of the weights, the batch order and the bootstraps.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        encoder: the encoder the embeddings come from; given with pooled embeddings, its token
            sequence is extracted and probed instead (workflows pass it).
        max_tokens: tokens per record of that extraction (averaged along time).
        cache_dir: extraction cache of that extraction (``None``: computed each time).

    Example:
        >>> tokens = ecgprobe.extract(encoder, records, tokens=32)  # doctest: +SKIP
        >>> res = AttentiveProbe(max_epochs=30).run(tokens, records)  # doctest: +SKIP
        >>> res.metrics["difference_vs_linear"], res.metrics["difference_vs_linear_ci"]  # doctest: +SKIP
    """

    n_heads: int = 4
    mlp_ratio: float = 4.0
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    max_epochs: int = 50
    patience: int = 5
    compare_linear: bool = True
    Cs: tuple[float, ...] = DEFAULT_CS
    n_resamples: int = 1000
    ci_level: float = 0.95
    ci_method: str = "percentile"
    min_positives: int = DEFAULT_MIN_POSITIVES
    n_bins: int = 10
    seed: int = 0
    device: str = "auto"
    encoder: Any = None
    max_tokens: int = 32
    cache_dir: str | None = None

    def _validate(self) -> None:
        for name in ("n_heads", "batch_size", "max_epochs", "patience", "max_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not float(self.mlp_ratio) > 0:
            raise ConfigError(f"mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if not (float(self.lr) > 0 and np.isfinite(float(self.lr))):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}")
        if not float(self.weight_decay) >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        check_common(self.n_resamples, self.ci_level, self.n_bins, self.ci_method, self.min_positives)

    def _run(self, emb: Embeddings, records: RecordSet) -> Result:
        if records.task != "multilabel":
            raise AnalysisError(
                "the attentive probe handles multi-label targets; use linear_probe for regression"
            )
        tokens_from = "embeddings"
        if emb.token_shape is None and self.encoder is not None:
            emb, tokens_from = self._extract_tokens(emb, records), "encoder"
        seq = emb.tokens()
        n_tok, dim = seq.shape[1:]
        data = split_data(emb.X, records)
        targets = fittable_targets(list(records.label_names), data.y)
        mean, scale, _ = fit_scaler(data.X["train"].reshape(-1, dim))
        tok = {
            s: ((x.reshape(len(x), n_tok, dim) - mean) / scale).astype(np.float32) for s, x in data.X.items()
        }
        device = resolve_device(self.device)
        fit = fit_attentive_head(
            tok["train"],
            targets.Y["train"],
            tok["val"],
            targets.Y["val"],
            n_heads=int(self.n_heads),
            mlp_ratio=float(self.mlp_ratio),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            batch_size=int(self.batch_size),
            max_epochs=int(self.max_epochs),
            patience=int(self.patience),
            seed=int(self.seed),
            device=device,
        )
        p_val, _ = fit.predict(tok["val"])
        p_test, attention = fit.predict(tok["test"])
        val_auc = rank_metrics(targets.Y["val"], p_val, ap=False)[0][0]
        ev = evaluate_probe(self, targets, p_val, p_test, data, val_auc)
        notes = list(data.notes) + list(ev.notes)
        info = emb.provenance.get("tokens") or {}
        if emb.token_shape is None:
            notes.append(
                "the embeddings carry no token sequence (extracted without tokens=): each record is one "
                "token, so the attention has nothing to choose and the head is a small MLP on the pooled "
                "embedding; extract with tokens= for the attentive probe proper"
            )
        if fit.stopped_early:
            notes.append(
                f"training stopped at epoch {fit.epochs_run} after {self.patience} epochs without a "
                f"validation improvement; epoch {fit.best_epoch} kept"
            )
        else:
            notes.append(
                f"training ran all {fit.epochs_run} epochs (max_epochs); epoch {fit.best_epoch} kept"
                + ("; more epochs might help" if fit.best_epoch == fit.epochs_run else "")
            )
        metrics = {
            **ev.metrics,
            "sequence": emb.token_shape is not None,
            "n_tokens": int(n_tok),
            "token_dim": int(dim),
            "max_tokens": info.get("max_tokens"),
            "token_layer": info.get("layer", emb.layer),
            "tokens_from": tokens_from,
            "epochs_run": fit.epochs_run,
            "best_epoch": fit.best_epoch,
            "stopped_early": fit.stopped_early,
            "best_val_macro_auroc": fit.best_val_macro_auroc,
            "n_parameters": fit.n_parameters,
            "n_train": len(tok["train"]),
            "n_val": len(tok["val"]),
            "device": fit.device,
            "threads": fit.threads,
        }
        arrays = {
            "val_macro_auroc_history": np.asarray(fit.val_macro_auroc),
            "train_loss_history": np.asarray(fit.train_loss),
            "test_attention": attention.astype(np.float32),
            "scaler_mean": mean,
            "scaler_scale": scale,
            **ev.arrays,
        }
        result = AttentiveProbeResult(
            kind=AttentiveProbeResult.KIND,
            metrics=metrics,
            tables=ev.tables,
            arrays=arrays,
            seed=int(self.seed),
            notes=notes,
        )
        if self.compare_linear:
            self._compare(result, emb, seq, records)
        return result

    def _extract_tokens(self, emb: Embeddings, records: RecordSet) -> Embeddings:
        """The encoder's token sequences of ``records`` (the records of the pooled ``emb``).

        Raises:
            ConfigError: the encoder exposes no sequence (naming those that do).
            AnalysisError: the encoder has other weights than the one that made ``emb``.
        """
        from ecgprobe.analyzers._stats.heads import _check_weights
        from ecgprobe.extract import extract

        _check_weights(self.encoder, emb, "encoder")
        return extract(
            self.encoder,
            records,
            tokens=int(self.max_tokens),
            window="official",
            device=self.device,
            cache_dir=self.cache_dir,
            progress=False,
        )

    def _compare(self, result: Result, emb: Embeddings, seq: np.ndarray, records: RecordSet) -> None:
        """The linear probe on the mean of the same tokens, and the paired difference (in place)."""
        pooled = Embeddings(seq.mean(axis=1), emb.ids, layer=emb.layer, provenance={"pooled_from": "tokens"})
        shared: dict[str, Any] = {
            "n_resamples": int(self.n_resamples),
            "ci_level": float(self.ci_level),
            "ci_method": self.ci_method,
            "min_positives": int(self.min_positives),
            "seed": int(self.seed),
        }
        linear = LinearProbe(Cs=self.Cs, n_bins=int(self.n_bins), device=self.device, **shared).run(
            pooled, records
        )
        cmp = paired_bootstrap(result, linear, metric="auroc", **shared)
        m = cmp.metrics
        low, high = m["difference_ci"]
        if low > 0:
            verdict = "attentive better"
        elif high < 0:
            verdict = "linear better"
        else:
            verdict = (
                f"inconclusive (n_test={m['n_test']}, {len(m['labels_compared'])} labels, "
                f"{100 * float(self.ci_level):g}% interval {low:+.3f} to {high:+.3f} includes 0)"
            )
        result.metrics.update(
            linear_macro_auroc=linear.metrics["macro_auroc"],
            linear_macro_auroc_ci=linear.metrics["macro_auroc_ci"],
            difference_vs_linear=m["difference"],
            difference_vs_linear_ci=m["difference_ci"],
            difference_vs_linear_p=m["p_value"],
            labels_compared=m["labels_compared"],
            comparison=verdict,
        )
        result.tables["vs_linear"] = [
            {
                "label": row["label"],
                "attentive": row["a"],
                "linear": row["b"],
                "difference": row["difference"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "flagged": row["flagged"],
            }
            for row in cmp.tables["per_label"]
        ]
        result.arrays["difference_replicates"] = cmp.arrays["difference_replicates"]
        result.notes.append(
            "the linear reference is linear_probe on the mean of the same tokens (same records, splits "
            f"and test patients); attentive - linear macro AUROC: {verdict}"
        )
