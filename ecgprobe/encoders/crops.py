"""The record-level protocol of an input contract: which windows of a record a model's official
evaluation embeds, and how their outputs become one record-level output.

:class:`RecordCrops` travels inside :class:`~ecgprobe.encoders.base.InputSpec` (``spec.crops``);
``extract(window="official")`` (the default) embeds those windows and averages them, and the
protocol is part of the contract's provenance, hence of every cache key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ecgprobe.exceptions import ConfigError

__all__ = ["RecordCrops"]

_CROP_RULES = ("first", "spaced", "chunks")


@dataclass(frozen=True)
class RecordCrops:
    """A family's official record-level protocol: which windows of a record its evaluation embeds
    and how their outputs are combined (honoured by ``extract(window="official")``).

    Window starts are offsets at the model's rate into a record of ``t`` samples (after
    resampling), for windows of the contract's ``n_samples``:

    - ``"first"``: ``[0]``, the first window (zero-padded when the record is shorter);
    - ``"spaced"``: ``n`` equally spaced windows, starts ``range(0, t - n_samples + 1, s)`` with
      ``s = (t - n_samples) // (n - 1)`` (ST-MEM's ``NCrop``; ``0, 125, 250`` for 2,250 of 2,500);
    - ``"chunks"``: every full non-overlapping window, ``range(0, t - n_samples + 1, n_samples)``;
      a partial tail is dropped, as the official chunkers do.

    A record no longer than one window gives one window, zero-padded (the official pipelines
    drop or refuse such records; a record set cannot).

    Attributes:
        rule: ``"first"``, ``"spaced"`` or ``"chunks"``.
        n: the number of windows for ``"spaced"`` (>= 2); 1 otherwise.
        reduce: how the window embeddings become the record's: ``"mean"``.
        source: the official file and function the protocol comes from.
    """

    rule: Literal["first", "spaced", "chunks"] = "first"
    n: int = 1
    reduce: Literal["mean"] = "mean"
    source: str = ""

    def __post_init__(self) -> None:
        if self.rule not in _CROP_RULES:
            raise ConfigError(f"RecordCrops.rule {self.rule!r} not in {list(_CROP_RULES)}")
        if self.rule == "spaced" and self.n < 2:
            raise ConfigError(f"RecordCrops(rule='spaced') needs n >= 2 windows, got n={self.n}")
        if self.rule != "spaced" and self.n != 1:
            raise ConfigError(
                f"RecordCrops.n applies to rule='spaced' only, got n={self.n} for {self.rule!r}"
            )
        if self.reduce != "mean":
            raise ConfigError(f"RecordCrops.reduce must be 'mean', got {self.reduce!r}")

    def starts(self, t: int, n_samples: int) -> list[int]:
        """Start offsets of the windows of a ``t``-sample record (model rate), for ``n_samples`` windows."""
        if self.rule == "first" or t <= n_samples:
            return [0]
        step = n_samples if self.rule == "chunks" else (t - n_samples) // (self.n - 1)
        return list(range(0, t - n_samples + 1, step)) if step > 0 else [0]

    def describe(self, n_samples: int | None = None, fs: float | None = None) -> str:
        """One line, e.g. ``mean over 3 equally spaced windows (starts 0, 125, 250 of a 10 s record)``."""
        if self.rule == "first":
            text = "the first window"
        else:
            what = (
                f"{self.n} equally spaced windows"
                if self.rule == "spaced"
                else ("every full non-overlapping window (a partial tail dropped)")
            )
            text = f"{self.reduce} over {what}"
            if n_samples and fs:
                ten_s = int(10 * fs)
                text += f" (starts {', '.join(map(str, self.starts(ten_s, n_samples)))} of a 10 s record)"
        return text
