"""``neighbour_gallery``: what "similar" means to the model — for a few test records, the k
nearest training ECGs in embedding space, with their labels and distances.

Queries are drawn with the seed: one test record per label (the label's positives first, so
each label is seen once), then random test records up to ``n_queries``. Neighbours come from the
training split only, by exact cosine (or Euclidean) search on the embeddings. The result keeps
one lead of each shown ECG, in mV, so the gallery is redrawn from the saved results alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ecgprobe.analyzers.base import ANALYZERS, Analyzer, Result, analyzer_settings
from ecgprobe.analyzers.knn_probe import METRICS, nearest_neighbours
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import AnalysisError, ConfigError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["NeighbourGallery", "NeighbourGalleryResult"]


@dataclass
class NeighbourGalleryResult(Result):
    """Result of :class:`NeighbourGallery`.

    Schema:
        tables: ``neighbours``: one row per (query, rank) with ``query_id``, ``rank`` (0 = the
            query itself), ``record_id``, ``labels`` (its positive labels, ``"none"``),
            ``distance`` (cosine distance or Euclidean, 0 for the query), ``shared_label``
            (whether it shares a positive label with the query).
        arrays: ``signals`` ``(Q, k+1, n)`` float32 mV of ``metrics["lead"]`` (query first).
        metrics: ``n_queries``, ``k``, ``metric``, ``lead``, ``fs``, ``share_rate`` (fraction of
            neighbours sharing a positive label with their query; descriptive).
    """

    KIND: ClassVar[str] = "neighbour_gallery"


@ANALYZERS.register(
    "neighbour_gallery", summary="the k nearest training ECGs of a few test records (what 'similar' means)"
)
@analyzer_settings
class NeighbourGallery(Analyzer):
    """Nearest training neighbours of a few test records.

    Args:
        n_queries: test records shown.
        k: neighbours per query.
        metric: ``"cosine"`` or ``"euclidean"``.
        lead: the lead kept for the gallery (``II`` by default, or the first the records have).
        seconds: seconds of signal kept per record (from the start).
        seed: seed of the query choice.

    Raises:
        ConfigError: bad settings.
        AnalysisError: no train or test records.

    Example:
        >>> res = NeighbourGallery(n_queries=4, k=5).run(emb, records)  # doctest: +SKIP
    """

    name = "neighbour_gallery"

    n_queries: int = 4
    k: int = 5
    metric: str = "cosine"
    lead: str = "II"
    seconds: float = 5.0
    seed: int = 0

    def _validate(self) -> None:
        for name in ("n_queries", "k"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 50:
                raise ConfigError(f"{name} must be an integer in 1..50, got {value!r}")
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {list(METRICS)}, got {self.metric!r}")
        if not isinstance(self.seconds, (int, float)) or self.seconds <= 0:
            raise ConfigError(f"seconds must be a positive number, got {self.seconds!r}")

    def _queries(self, records: RecordSet, test: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        chosen: list[int] = []
        if records.task == "multilabel":
            for c in rng.permutation(len(records.label_names)):
                pos = [i for i in test[records.y[test, c] == 1] if i not in chosen]
                if pos and len(chosen) < self.n_queries:
                    chosen.append(int(rng.choice(pos)))
        rest = [i for i in rng.permutation(test) if i not in chosen]
        return np.asarray((chosen + rest)[: self.n_queries], dtype=np.int64)

    def _labels(self, records: RecordSet, i: int) -> str:
        if records.task != "multilabel":
            return "–"
        on = [records.label_names[c] for c in np.flatnonzero(records.y[i] == 1)]
        return ", ".join(on) or "none"

    def _run(self, emb: Embeddings, records: RecordSet) -> NeighbourGalleryResult:
        train = np.flatnonzero(records.split == "train")
        test = np.flatnonzero(records.split == "test")
        if not len(train) or not len(test):
            raise AnalysisError(
                f"the gallery needs train and test records ({len(train)} train, {len(test)} test in {records.name!r})"
            )
        k = min(self.k, len(train))
        q = self._queries(records, test)
        nbr = train[nearest_neighbours(emb.X[q], emb.X[train], k, metric=self.metric)]  # (Q, k)
        X = emb.X.astype(np.float64)
        if self.metric == "cosine":
            unit = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
            dist = 1.0 - np.einsum("qd,qkd->qk", unit[q], unit[nbr])
        else:
            dist = np.linalg.norm(X[q][:, None, :] - X[nbr], axis=-1)
        leads = list(records.leads)
        lead = self.lead if self.lead in leads else leads[0]
        n = int(round(self.seconds * records.fs))
        shown = np.concatenate([q[:, None], nbr], axis=1)  # (Q, k+1)
        flat = np.unique(shown)
        sig = records.read(flat)[:, leads.index(lead), :n].astype(np.float32)
        where = {int(i): j for j, i in enumerate(flat)}
        signals = np.stack([[sig[where[int(i)]] for i in row] for row in shown])
        rows: list[dict[str, Any]] = []
        shares = []
        for a, qi in enumerate(q):
            qpos = set(np.flatnonzero(records.y[qi] == 1)) if records.task == "multilabel" else set()
            for rank, i in enumerate(shown[a]):
                ipos = set(np.flatnonzero(records.y[i] == 1)) if records.task == "multilabel" else set()
                shared = bool(qpos & ipos) if rank else True
                if rank:
                    shares.append(shared)
                rows.append(
                    {
                        "query_id": str(records.ids[qi]),
                        "rank": rank,
                        "record_id": str(records.ids[i]),
                        "labels": self._labels(records, int(i)),
                        "distance": 0.0 if rank == 0 else float(dist[a, rank - 1]),
                        "shared_label": shared,
                    }
                )
        return NeighbourGalleryResult(
            kind=NeighbourGalleryResult.KIND,
            metrics={
                "n_queries": len(q),
                "k": k,
                "metric": self.metric,
                "lead": lead,
                "fs": float(records.fs),
                "seconds": n / float(records.fs),
                "share_rate": float(np.mean(shares)) if shares else None,
            },
            tables={"neighbours": rows},
            arrays={"signals": signals},
            seed=self.seed,
            notes=[
                "queries: one test record per label (seeded), neighbours from the training split; the share of "
                "neighbours with a common label is descriptive (few queries, no interval)"
            ],
        )
