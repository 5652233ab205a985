"""The PDF page breaker: rules proven on measured units with known heights."""

from __future__ import annotations

import itertools

import pytest

from ecgprobe.report._paginate import MIN_ROWS, Unit, page_heights, paginate

CAP = 100.0


def _table(block: int, n: int, row: float = 6.0, head: float = 12.0, header: float = 5.0) -> list[Unit]:
    """Units as the PDF writer makes them for a table of ``n`` rows."""
    units = [Unit(block, 0, head, keep=n > 0)]
    for k in range(n):
        together = n < 2 * MIN_ROWS or k < MIN_ROWS - 1 or k >= n - MIN_ROWS
        units.append(Unit(block, k + 1, row, keep=together and k != n - 1, carry=header))
    return units


def _heights(units: list[Unit], pages: list[list[int]]) -> list[float]:
    out = []
    for page in pages:  # recomputed here, independently of page_heights
        total, last = 0.0, None
        for i in page:
            u = units[i]
            total += u.height + (u.carry if u.block != last else 0.0)
            last = u.block
        out.append(total)
    assert out == pytest.approx(page_heights(units, pages))
    return out


def test_every_unit_once_in_order_and_pages_fit():
    units = [
        Unit(-1, 0, 15, keep=True),
        *_table(0, 40),
        Unit(1, 0, 30),
        Unit(2, 0, 8, keep=True),
        *_table(3, 7),
    ]
    pages = paginate(units, CAP)
    assert list(itertools.chain(*pages)) == list(range(len(units)))
    assert all(h <= CAP for h in _heights(units, pages))


@pytest.mark.parametrize("n", range(1, 40))
def test_tables_split_with_min_rows_on_each_side(n):
    units = [Unit(-1, 0, 20, keep=True), Unit(0, 0, 30), *_table(1, n)]
    pages = paginate(units, CAP)
    for page in pages:
        rows = [units[i] for i in page if units[i].block == 1 and units[i].part > 0]
        if rows and len(rows) < n:  # a piece of a split table
            assert len(rows) >= MIN_ROWS, (n, [len(p) for p in pages])
    if n < 2 * MIN_ROWS:  # a short table never splits
        assert sum(any(units[i].block == 1 and units[i].part > 0 for i in p) for p in pages) == 1


def test_heading_and_caption_are_kept_with_what_follows():
    # a heading near the bottom of a page moves to the next page with the figure under it
    units = [Unit(-1, 0, 15, keep=True), Unit(0, 0, 70), Unit(1, 0, 8, keep=True), Unit(2, 0, 40)]
    pages = paginate(units, CAP)
    assert pages == [[0, 1], [2, 3]]
    # a table's caption and header never end a page
    units = [Unit(-1, 0, 15, keep=True), Unit(0, 0, 70), *_table(1, 10)]
    for page in paginate(units, CAP):
        assert not (units[page[-1]].block == 1 and units[page[-1]].part == 0)


def test_a_section_never_ends_on_a_near_empty_page():
    # greedy filling would leave the last 3 rows alone on page 2; balancing moves rows over
    units = [Unit(-1, 0, 15, keep=True), *_table(0, 14)]  # 15 + 12 + 14*6 = 111 > CAP
    pages = paginate(units, CAP, min_tail=40)
    heights = _heights(units, pages)
    assert len(pages) == 2 and heights[-1] >= 40 and heights[0] >= 40, heights


def test_balancing_keeps_the_previous_page_substantial():
    # a big figure cannot move (it would not fit with the tail): the short tail stays
    units = [Unit(-1, 0, 10, keep=True), Unit(0, 0, 85), Unit(1, 0, 10)]
    pages = paginate(units, CAP, min_tail=40)
    assert pages == [[0, 1], [2]]


def test_a_unit_taller_than_a_page_gets_a_page_of_its_own():
    units = [Unit(-1, 0, 10, keep=True), Unit(0, 0, 20), Unit(1, 0, 150), Unit(2, 0, 20)]
    pages = paginate(units, CAP)
    assert list(itertools.chain(*pages)) == [0, 1, 2, 3]
    assert [2] in pages or any(p[0] == 2 for p in pages)


def test_random_sections_keep_every_rule():
    """Seeded random sections (headings, paragraphs, figures, tables of any length): pages fit,
    split tables keep MIN_ROWS rows a side, and a short last page happens only when the group
    before it could not move over."""
    import numpy as np

    from ecgprobe.report._paginate import MIN_TAIL

    rng = np.random.default_rng(0)
    for _ in range(120):
        units = [Unit(-1, 0, float(rng.uniform(12, 25)), keep=True)]
        for block in range(int(rng.integers(1, 8))):
            kind = rng.integers(0, 4)
            if kind == 0:
                units.append(Unit(block, 0, float(rng.uniform(6, 10)), keep=True))  # heading
            elif kind == 1:
                units.append(Unit(block, 0, float(rng.uniform(5, 40))))  # paragraph
            elif kind == 2:
                units.append(
                    Unit(block, 0, float(rng.uniform(30, 0.62 * CAP)))
                )  # figure (at most 0.62 page + caption)
            else:
                units += _table(block, int(rng.integers(0, 45)), row=float(rng.uniform(3, 9)))
        pages = paginate(units, CAP, min_tail=MIN_TAIL)
        assert list(itertools.chain(*pages)) == list(range(len(units)))
        heights = _heights(units, pages)
        assert all(h <= CAP + 1e-9 for h in heights)
        for page in pages:  # nothing kept-with-next ends a page
            assert not units[page[-1]].keep or page is pages[-1], (units, pages)
        for page in pages[1:]:
            rows = [units[i] for i in page if units[i].part > 0]
            blocks = {u.block for u in rows}
            for b in blocks:  # pieces of split tables keep MIN_ROWS rows
                n = sum(1 for u in units if u.block == b and u.part > 0)
                here = sum(1 for u in rows if u.block == b)
                assert here == n or here >= MIN_ROWS
        if len(pages) > 1 and heights[-1] < MIN_TAIL:  # unavoidable: the group before could not move
            prev = pages[-2]
            starts = [k for k in range(1, len(prev)) if not units[prev[k - 1]].keep]
            if starts:
                moved = prev[starts[-1] :] + pages[-1]
                assert (
                    _heights(units, [moved])[0] > CAP or _heights(units, [prev[: starts[-1]]])[0] < MIN_TAIL
                )
