"""``paired_bootstrap``: two encoders' probes on the same test patients, their difference with a
paired interval (the mathematics: :func:`ecgprobe.analyzers.bootstrap.paired_bootstrap`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ecgprobe.analyzers.base import ANALYZERS, PairwiseAnalyzer, Result
from ecgprobe.analyzers.bootstrap import PairedBootstrapResult, check_ci_method, paired_bootstrap
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["PairedBootstrap"]


@ANALYZERS.register(
    "paired_bootstrap",
    pairwise=True,
    summary="difference of two encoders' probe AUROC per label and macro, paired patient bootstrap",
)
class PairedBootstrap(PairwiseAnalyzer):
    """The difference between two encoders' linear probes, resampling the same patients for both.

    Args:
        probes: the two ``linear_probe`` (or ``knn_probe``) results, side A's then side B's;
            ``None`` fits a linear probe with default settings on each side.
        metric: ``"auroc"`` (default) or ``"auprc"``; ``"mae"``, ``"rmse"`` or ``"r2"`` for
            regression (default ``"mae"``).
        n_resamples: bootstrap resamples.
        ci_level: confidence level.
        ci_method: ``"percentile"`` or ``"bca"``.
        min_positives: labels with fewer positive (or negative) test patients are left out of the
            compared macro (default: the probes' own setting).
        seed: seed of the resampling.

    Example:
        >>> res = PairedBootstrap(probes=(probe_a, probe_b)).run(emb_a, emb_b, records)  # doctest: +SKIP
        >>> res.metrics["difference"], res.metrics["difference_ci"]  # doctest: +SKIP
    """

    name = "paired_bootstrap"
    requires: ClassVar[Mapping[str, str]] = {"probes": "linear_probe"}

    def __init__(
        self,
        *,
        probes: tuple[Result, Result] | None = None,
        metric: str | None = None,
        n_resamples: int = 1000,
        ci_level: float = 0.95,
        ci_method: str = "percentile",
        min_positives: int | None = None,
        seed: int = 0,
    ) -> None:
        self.probes = probes
        self.metric = metric
        self.n_resamples = n_resamples
        self.ci_level = ci_level
        self.ci_method = ci_method
        self.min_positives = min_positives
        self.seed = seed

    def _validate(self) -> None:
        if self.probes is not None and (
            len(self.probes) != 2 or not all(isinstance(p, Result) for p in self.probes)
        ):
            raise ConfigError("probes must be two probe results (side A's, side B's) or None")
        if not isinstance(self.n_resamples, int) or self.n_resamples < 1:
            raise ConfigError(f"n_resamples must be an integer >= 1, got {self.n_resamples!r}")
        if not 0 < self.ci_level < 1:
            raise ConfigError(f"ci_level must lie in (0, 1), got {self.ci_level!r}")
        check_ci_method(self.ci_method, 1 if self.min_positives is None else self.min_positives)

    def _run(self, a: Embeddings, b: Embeddings, records: RecordSet | None) -> PairedBootstrapResult:
        probes: Any = self.probes
        if probes is None:
            if records is None:
                raise ConfigError("paired_bootstrap without probes= needs the records, to fit them")
            from ecgprobe.analyzers.probe import LinearProbe

            probes = tuple(LinearProbe(seed=self.seed).run(e, records) for e in (a, b))
        return paired_bootstrap(
            probes[0],
            probes[1],
            metric=self.metric,
            n_resamples=self.n_resamples,
            seed=self.seed,
            ci_level=self.ci_level,
            ci_method=self.ci_method,
            min_positives=self.min_positives,
        )
