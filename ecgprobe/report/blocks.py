"""The building blocks of a report section: data, rendered alike to HTML and PDF.

A section renderer turns results into a list of blocks (paragraphs, key/value lists, tables,
figures, notes); :mod:`.html` and :mod:`.pdf` each render every block type, so both formats show
the same content. Blocks hold text and PNG bytes only (numbers are formatted by the renderer that
made them), which keeps the two outputs identical in substance and makes rendering deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Block",
    "Bullets",
    "Figure",
    "Heading",
    "KeyValues",
    "Note",
    "Paragraph",
    "Section",
    "Table",
    "fmt",
    "fmt_ci",
    "fmt_pct",
]


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    text: str


@dataclass(frozen=True)
class Paragraph:
    """Plain text (escaped on output; no markup)."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list; ``tone`` marks findings (``"good"``/``"bad"``) for the reader."""

    items: tuple[str, ...]
    title: str = ""
    tone: Literal["plain", "good", "bad"] = "plain"


@dataclass(frozen=True)
class KeyValues:
    """Two-column facts (``name: value``)."""

    rows: tuple[tuple[str, str], ...]
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A table of pre-formatted cells.

    Attributes:
        columns: header cells.
        rows: body rows, each as long as ``columns``.
        caption: shown above the table.
        numeric: which columns are right-aligned numbers (default: guessed from the cells).
        widths: relative column widths for the PDF (default: from the longest cell).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    numeric: tuple[bool, ...] = ()
    widths: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        bad = [i for i, r in enumerate(self.rows) if len(r) != len(self.columns)]
        if bad:
            raise ValueError(f"table {self.caption!r}: rows {bad[:5]} do not have {len(self.columns)} cells")
        if not self.numeric:
            object.__setattr__(
                self, "numeric", tuple(_numeric_column(self.rows, j) for j in range(len(self.columns)))
            )

    def col_widths(self) -> tuple[float, ...]:
        """Relative widths (given, or the longest cell per column clipped to [4, 40] characters,
        plus 2 for the cell padding)."""
        if self.widths:
            return self.widths
        longest = [max([len(c)] + [len(r[j]) for r in self.rows]) for j, c in enumerate(self.columns)]
        return tuple(float(min(max(n, 4), 40) + 2) for n in longest)


def _numeric_column(rows: Sequence[Sequence[str]], j: int) -> bool:
    cells = [r[j] for r in rows if r[j] not in ("", "–", "n/a")]
    return bool(cells) and all(c[:1].isdigit() or c[:1] in "-+−." for c in cells)


@dataclass(frozen=True)
class Figure:
    """A rendered figure (PNG bytes) with a caption and alternative text.

    Attributes:
        png: the image (deterministic bytes: see :func:`ecgprobe.report.figures.render_png`).
        caption: shown under the figure.
        alt: a text description for screen readers and for when the image cannot be shown.
        width: share of the text width the figure should take (0-1].
    """

    png: bytes
    caption: str
    alt: str = ""
    width: float = 1.0


@dataclass(frozen=True)
class Note:
    """A remark the reader must see (analysis notes, skipped labels, missing sections)."""

    text: str
    tone: Literal["info", "warning"] = "info"


Block = Heading | Paragraph | Bullets | KeyValues | Table | Figure | Note


@dataclass
class Section:
    """One numbered part of the report (a table-of-contents entry, a new PDF page)."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    lead: str = ""


# ------------------------------------------------------------------------- number formatting
def fmt(value: object, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``–`` for missing/NaN; integers unchanged."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(f):
        return "–"
    return f"{f:.{digits}f}"


def fmt_ci(point: object, lo: object, hi: object, digits: int = 3) -> str:
    """``0.912 [0.894, 0.930]`` (the point alone when the interval is missing)."""
    if lo is None or hi is None:
        return fmt(point, digits)
    return f"{fmt(point, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def fmt_pct(value: object, digits: int = 0) -> str:
    """A fraction as a percentage (``0.25`` -> ``25%``)."""
    if value is None:
        return "–"
    try:
        return f"{100 * float(value):.{digits}f}%"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
