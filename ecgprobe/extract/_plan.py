"""Which cache shards of which layers an extraction must compute, on one shard grid.

:func:`plan_work` opens one :class:`~ecgprobe.extract.cache.CacheEntry` per layer and lists the
records each shard still needs (all of them without a cache); :func:`complete_shard` puts the
recomputed rows of a partly cached shard back among its cached ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecgprobe.exceptions import CacheError
from ecgprobe.extract.cache import CacheEntry

__all__ = ["Plan", "complete_shard", "plan_work"]


@dataclass
class Plan:
    """Which records of which shards of which layers must be computed, and where they are cached."""

    wanted: list[str]
    shard: int
    n_shards: int
    entries: dict[str, CacheEntry]
    need: dict[str, dict[int, np.ndarray]]  # layer -> shard -> record positions to compute

    @property
    def todo(self) -> list[int]:
        return sorted(set().union(*(set(per) for per in self.need.values())))

    def rows(self, s: int, n: int) -> np.ndarray:
        """Records of shard ``s`` to compute: the union of what its layers need."""
        parts = [per[s] for per in self.need.values() if s in per]
        return np.unique(np.concatenate(parts)) if parts else np.arange(0)

    def n_changed(self) -> int:
        """Records to recompute because their content changed (their shard is cached)."""
        changed: set[int] = set()
        for layer, entry in self.entries.items():
            for s, rows in self.need[layer].items():
                if s in entry.shards:
                    changed.update(rows.tolist())
        return len(changed)


def plan_work(
    encoder_name: str,
    provenance: dict[str, Any],
    wanted: list[str],
    digests: np.ndarray | None,
    n: int,
    cache_dir: str | Path | None,
    shard_size: int,
    overwrite: str,
) -> Plan:
    """Plan the work; ``digests`` (the records' content digests) are needed with a ``cache_dir``."""
    shard = min(shard_size, n)
    entries: dict[str, CacheEntry] = {}
    if cache_dir is not None:
        if digests is None or len(digests) != n:
            raise ValueError("plan_work: a cache needs one content digest per record")
        entries = {
            layer: CacheEntry.open(cache_dir, encoder_name, provenance, layer, digests, shard)
            for layer in wanted
        }
        if overwrite == "always":
            for e in entries.values():
                e.clear()
        # one shard grid for all layers: adopt that of a layer cached earlier, restart layers on another grid
        cached = [e.shard_size for e in entries.values() if e.shards]
        shard = cached[0] if cached else shard
        for e in entries.values():
            if e.shard_size != shard:
                e.clear()
                e.shard_size = shard
                e.refresh()
    n_shards = -(-n // shard)
    if cache_dir is None:
        every = {s: np.arange(s * shard, min((s + 1) * shard, n)) for s in range(n_shards)}
        need = {layer: dict(every) for layer in wanted}
    else:
        need = {layer: e.todo() for layer, e in entries.items()}
    return Plan(wanted, shard, n_shards, entries, need)


def complete_shard(plan: Plan, layer: str, s: int, rows: np.ndarray, block: np.ndarray, n: int) -> np.ndarray:
    """Shard ``s`` of ``layer`` whole: the computed ``rows`` over the cached rows where some were kept."""
    start, stop = s * plan.shard, min((s + 1) * plan.shard, n)
    if len(rows) == stop - start:
        return block
    full = plan.entries[layer].load_shard(s)
    if full is None:  # verified when planned: removed since by a concurrent writer
        raise CacheError(
            f"cache shard {plan.entries[layer].path(s)} disappeared during extraction; run again"
        )
    full = full.copy()
    full[rows - start] = block
    return full
