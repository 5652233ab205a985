"""Page breaking for the PDF report: measured units, kept together by rules, placed on pages.

fpdf2 breaks a page wherever the cursor crosses the bottom margin, so what lands on a page
depends on the exact heights of everything before it (fonts, figure sizes, numbers). Left to
itself that strands headings at a page bottom and leaves a page holding one table row. Here the
writer first *measures* each piece of a section (a heading, a paragraph, a figure, one table
row), and this module decides the page breaks before anything is drawn, by three rules:

1. **Keep with next** — a heading, a table's caption and header, and a bullet list's title stay
   on the page of what follows them.
2. **No widows and orphans** — a table splits only with at least :data:`MIN_ROWS` rows on each
   side of the break (a shorter table never splits), a bullet list with at least two items.
3. **No near-empty continuation page** — when a section's last page would hold less than
   :data:`MIN_TAIL` mm, content moves over from the page before (whole keep-together groups)
   while that page keeps at least as much.

The result is the same on every machine for the same measured heights, and the heights are
measured with the fonts shipped inside the package's dependencies (matplotlib's DejaVu).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIN_ROWS", "MIN_TAIL", "Unit", "page_heights", "paginate"]

#: Table rows kept together at either end of a split.
MIN_ROWS = 3
#: The least content (mm) a section's continuation page should hold.
MIN_TAIL = 50.0


@dataclass(frozen=True)
class Unit:
    """An unbreakable piece of a section.

    Attributes:
        block: index of the block it belongs to (``-1`` for the section title).
        part: index within the block (a table row, a bullet item).
        height: height in mm, including the space after it.
        keep: keep this unit on the same page as the next one.
        carry: extra height when the unit opens its block's run on a page (a table's header
            repeated on a continuation page).
    """

    block: int
    part: int
    height: float
    keep: bool = False
    carry: float = 0.0


def _groups(units: list[Unit]) -> list[list[int]]:
    out: list[list[int]] = []
    current: list[int] = []
    for i, u in enumerate(units):
        current.append(i)
        if not u.keep:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def _height(units: list[Unit], idx: list[int], page: list[int]) -> float:
    """Height of ``idx`` placed after the units already on ``page``."""
    last = units[page[-1]].block if page else None
    total = 0.0
    for i in idx:
        u = units[i]
        if u.block != last:
            total += u.carry
        total += u.height
        last = u.block
    return total


def _used(units: list[Unit], page: list[int]) -> float:
    return _height(units, page, [])


def page_heights(units: list[Unit], pages: list[list[int]]) -> list[float]:
    """The planned content height (mm) of each page."""
    return [_used(units, page) for page in pages]


def paginate(units: list[Unit], capacity: float, min_tail: float = MIN_TAIL) -> list[list[int]]:
    """Assign the units of one section (which starts on a fresh page) to pages.

    Args:
        units: the section's units in reading order.
        capacity: the usable height of a page in mm.
        min_tail: the least content of a continuation page, where it can be had.

    Returns:
        Pages as lists of unit indices, in order; together they hold every unit once.
    """
    pages: list[list[int]] = [[]]
    for group in _groups(units):
        page = pages[-1]
        if _used(units, page) + _height(units, group, page) <= capacity:
            page.extend(group)
        elif page and _height(units, group, []) <= capacity:
            pages.append(list(group))
        else:  # taller than a page: break inside it, unit by unit
            _place_split(units, group, pages, capacity)
    _balance_tail(units, pages, capacity, min_tail)
    return [p for p in pages if p]


def _place_split(units: list[Unit], group: list[int], pages: list[list[int]], capacity: float) -> None:
    for i in group:
        page = pages[-1]
        if page and _used(units, page) + _height(units, [i], page) > capacity:
            pages.append([])
        pages[-1].append(i)


def _balance_tail(units: list[Unit], pages: list[list[int]], capacity: float, min_tail: float) -> None:
    """Move whole groups from the second-last page onto a near-empty last page."""
    if len(pages) < 2:
        return
    last, prev = pages[-1], pages[-2]
    starts = {g[0] for g in _groups(units)}
    while _used(units, last) < min_tail:
        # the last keep-together group that ends the previous page
        cut = max((k for k in range(1, len(prev)) if prev[k] in starts), default=None)
        if cut is None:
            return
        moved = prev[cut:]
        if _height(units, moved + last, []) > capacity or _used(units, prev[:cut]) < min_tail:
            return
        pages[-2] = prev = prev[:cut]
        pages[-1] = last = moved + last
