"""The report as a PDF, with pure-pip tools only (fpdf2 and the DejaVu fonts matplotlib ships).

The PDF shows the same sections and blocks as the HTML: a cover page with the title and a
table of contents (with page numbers and links), then each section starting on a new page,
with bookmarks. Page breaks are planned before drawing (:mod:`._paginate`): headings stay with
what follows, tables split only with several rows on each side, and no section ends on a
near-empty page. Dates are taken from the report, not the clock, so re-rendering is identical.
"""

from __future__ import annotations

import datetime as _dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgprobe._version import __version__
from ecgprobe.exceptions import DependencyError
from ecgprobe.report._paginate import MIN_ROWS, MIN_TAIL, Unit, page_heights, paginate
from ecgprobe.report.blocks import Bullets, Figure, Heading, KeyValues, Note, Paragraph, Section, Table
from ecgprobe.report.html import MODE_LABELS, provenance_line, subtitle

if TYPE_CHECKING:
    from ecgprobe.report.document import Report

__all__ = ["PdfLayout", "breakable", "layout_pdf", "render_pdf", "section_pages"]

_FONT = "DejaVu"
_INK = (29, 35, 48)
_MUTED = (91, 100, 117)
_ACCENT = (36, 87, 166)
_TONE = {
    "good": (29, 122, 70),
    "bad": (179, 64, 30),
    "plain": (217, 221, 229),
    "info": _ACCENT,
    "warning": (208, 138, 0),
}
#: Tallest figure, as a share of the page: a section title, a heading and the caption still fit.
_FIGURE_MAX = 0.62
_EPOCH = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)


def _fonts_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _created(report: Report) -> _dt.datetime:
    raw = report.context.get("created")
    try:
        when = _dt.datetime.fromisoformat(raw) if raw else _EPOCH
    except ValueError:
        when = _EPOCH
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


_SEPARATORS = re.compile(r"(?<=[/_\-.:,=|+])(?=\S)")
_LONG_TOKEN = re.compile(r"\S{16,}")


def breakable(text: str) -> str:
    """``text`` with zero-width spaces after separators inside long tokens (``a/b_c-d``), so a
    long encoder, layer or file name wraps at a separator instead of mid-word."""
    return _LONG_TOKEN.sub(lambda m: _SEPARATORS.sub("\u200b", m.group(0)), text)


_PAD_MM = 1.2  # the table cells' horizontal padding (see _draw_table_run)


def _fit_widths(pdf: Any, columns: Any, rows: list[Any], size: float) -> tuple[float, ...]:
    """Column widths (mm) from the text itself, as a browser's automatic table layout does:
    each column at least as wide as its longest word (so nothing breaks mid-word, header words in
    bold included), the rest of the width shared in proportion to how much more each column's
    longest line wants. Only when even the words do not fit are they squeezed proportionally."""
    n = len(columns) if columns is not None else len(rows[0]) if rows else 0
    least, want = [0.0] * n, [0.0] * n
    for style, cells in (("B", [columns] if columns is not None else []), ("", rows)):
        pdf.set_font(_FONT, style, size)
        for row in cells:
            for j, cell in enumerate(row):
                text = str(cell)
                words = re.split(r"[\s\u200b]+", breakable(text)) or [""]
                least[j] = max(least[j], max(pdf.get_string_width(w) for w in words) + 2 * _PAD_MM + 0.6)
                want[j] = max(want[j], pdf.get_string_width(text) + 2 * _PAD_MM + 0.6)
    pdf.set_font(_FONT, "", size)
    total = pdf.epw
    if not n:
        return ()
    if sum(want) <= total:
        return tuple(w * total / sum(want) for w in want)
    if sum(least) >= total:
        return tuple(w * total / sum(least) for w in least)
    extra = [w - m for w, m in zip(want, least)]
    spare = total - sum(least)
    return tuple(m + spare * e / sum(extra) for m, e in zip(least, extra))


def _document(report: Report, *, scratch: bool = False) -> Any:
    try:
        from fpdf import FPDF
    except ImportError as exc:  # a declared dependency; this guards broken installs
        raise DependencyError("the PDF report needs fpdf2: pip install 'fpdf2>=2.7'") from exc

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_margins(16, 16, 16)
    # the scratch document only measures: its cursor runs on past the page bottom
    pdf.set_auto_page_break(not scratch, margin=16)
    fonts = _fonts_dir()
    pdf.add_font(_FONT, "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font(_FONT, "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.add_font(_FONT, "I", str(fonts / "DejaVuSans-Oblique.ttf"))
    if not scratch:
        pdf.set_title(report.title)
        pdf.set_author("ecgprobe")
        pdf.set_creator(f"ecgprobe {__version__}")
        pdf.set_producer(f"ecgprobe {__version__} (fpdf2)")
        pdf.set_creation_date(_created(report))
    pdf.set_text_color(*_INK)
    return pdf


def _text(
    pdf: Any,
    text: str,
    size: float = 9.5,
    style: str = "",
    color: tuple[int, int, int] = _INK,
    h: float = 5.0,
) -> None:
    pdf.set_font(_FONT, style, size)
    pdf.set_text_color(*color)
    pdf.multi_cell(0, h, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*_INK)


def _bar(pdf: Any, tone: str, y0: float) -> None:
    pdf.set_draw_color(*_TONE[tone])
    pdf.set_line_width(1.0)
    if pdf.y > y0:
        pdf.line(pdf.l_margin - 2.5, y0, pdf.l_margin - 2.5, pdf.y)


@dataclass(frozen=True)
class PdfLayout:
    """The rendered PDF with what the page breaker decided (for tests and the CLI).

    Attributes:
        pdf: the document.
        starts: the page each section opens on, by section id.
        planned: per section id, the number of pages the layout planned for it.
        overflows: sections whose drawing did not follow the plan (a measuring error: fpdf2's
            own page break took over); empty when every page break was chosen by the rules.
        short_pages: continuation pages planned with less than :data:`._paginate.MIN_TAIL`
            of content because no rule could avoid it (e.g. a full-page figure before a short
            tail).
    """

    pdf: bytes
    starts: dict[str, int]
    planned: dict[str, int]
    overflows: tuple[str, ...]
    short_pages: tuple[int, ...] = ()


class _Writer:
    """Lays blocks out on pages (measured first, see :mod:`._paginate`), then draws them."""

    def __init__(self, report: Report) -> None:
        self.pdf = _document(report)
        self._scratch = _document(report, scratch=True)
        self.report = report
        self.section_pages: dict[str, int] = {}
        self.planned: dict[str, int] = {}
        self.overflows: list[str] = []
        self.short_pages: list[int] = []
        self._fresh = False

    @property
    def width(self) -> float:
        return float(self.pdf.epw)

    @property
    def capacity(self) -> float:
        """Usable page height, less a little slack for rounding in fpdf2's own break test."""
        return float(self.pdf.page_break_trigger - self.pdf.t_margin) - 0.5

    # ------------------------------------------------------------------------- cover
    def cover(self, sections: list[Section]) -> None:
        pdf = self.pdf
        pdf.add_page()
        _text(pdf, f"ECGPROBE · {MODE_LABELS[self.report.mode].upper()}", 9, "B", _ACCENT)
        pdf.ln(1)
        _text(pdf, self.report.title, 20, "B", h=9)
        sub = subtitle(self.report)
        if sub:
            _text(pdf, sub, 10, color=_MUTED)
        _text(pdf, breakable(provenance_line(self.report)), 8, color=_MUTED, h=4.2)
        pdf.set_draw_color(*_ACCENT)
        pdf.set_line_width(0.8)
        pdf.line(pdf.l_margin, pdf.y + 2, pdf.l_margin + self.width, pdf.y + 2)
        pdf.ln(8)
        pdf.insert_toc_placeholder(self._toc, pages=1)  # moves on to a fresh page for section 1
        self._fresh = True

    def _toc(self, pdf: Any, outline: list[Any]) -> None:
        _text(pdf, "Contents", 13, "B", h=7)
        pdf.ln(2)
        pdf.set_font(_FONT, "", 10.5)
        for i, entry in enumerate(outline, start=1):
            link = pdf.add_link(page=entry.page_number)
            label = f"{i}  {entry.name}"
            pdf.cell(self.width - 15, 7, label, link=link)
            pdf.cell(15, 7, str(entry.page_number), align="R", link=link, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        _text(
            pdf,
            f"Generated by ecgprobe {__version__} from results.json; every number in this document is stored there.",
            8.5,
            color=_MUTED,
        )

    # ------------------------------------------------------------------------- measuring
    def _measure(self, draw: Callable[[Any], None]) -> float:
        scratch = self._scratch
        scratch.add_page()
        y0 = scratch.y
        draw(scratch)
        return float(scratch.y - y0)

    def _units(self, number: int, sec: Section) -> list[Unit]:
        units = [Unit(-1, 0, self._measure(lambda p: self._title(p, number, sec)), keep=True)]
        for i, block in enumerate(sec.blocks):
            units.extend(getattr(self, f"_units_{type(block).__name__.lower()}")(i, block))
        return units

    def _single(self, i: int, block: Any, keep: bool = False) -> list[Unit]:
        draw = getattr(self, f"_draw_{type(block).__name__.lower()}")
        return [Unit(i, 0, self._measure(lambda p: draw(p, block, range(1))), keep=keep)]

    def _units_heading(self, i: int, b: Heading) -> list[Unit]:
        return self._single(i, b, keep=True)

    def _units_paragraph(self, i: int, b: Paragraph) -> list[Unit]:
        return self._single(i, b)

    def _units_note(self, i: int, b: Note) -> list[Unit]:
        return self._single(i, b)

    def _units_figure(self, i: int, b: Figure) -> list[Unit]:
        return self._single(i, b)

    def _units_bullets(self, i: int, b: Bullets) -> list[Unit]:
        n = len(b.items)
        units = []
        if b.title:
            units.append(Unit(i, 0, self._measure(lambda p: self._bullet_title(p, b)), keep=True))
        for k, item in enumerate(b.items):
            tail = 2.0 if k == n - 1 else 0.0
            h = self._measure(lambda p, item=item: _text(p, f"•  {item}", 9.5)) + tail
            keep = n >= 2 and (k == 0 or k == n - 2) and k != n - 1
            units.append(Unit(i, k + 1, h, keep=keep))
        return units

    def _units_keyvalues(self, i: int, b: KeyValues) -> list[Unit]:
        return self._units_table(i, _kv_table(b), header=False)

    def _units_table(self, i: int, b: Table, header: bool = True) -> list[Unit]:
        head = self._measure(lambda p: self._draw_table_run(p, b, header, [], caption=True))
        bare = self._measure(lambda p: self._draw_table_run(p, b, header, [], caption=False))
        n = len(b.rows)
        units = [Unit(i, 0, head, keep=n > 0)]
        for k in range(n):
            h = self._measure(lambda p, k=k: self._draw_table_run(p, b, header, [k], caption=False)) - bare
            if k == n - 1:
                h += 3.0
            together = n < 2 * MIN_ROWS or k < MIN_ROWS - 1 or k >= n - MIN_ROWS
            units.append(Unit(i, k + 1, h, keep=together and k != n - 1, carry=bare))
        return units

    # ------------------------------------------------------------------------- drawing
    def section(self, number: int, sec: Section) -> None:
        pdf = self.pdf
        units = self._units(number, sec)
        plan = paginate(units, self.capacity)
        self.planned[sec.id] = len(plan)
        if not self._fresh:
            pdf.add_page()
        self._fresh = False
        first = pdf.page_no()
        pdf.start_section(sec.title, level=0)
        self.section_pages[sec.id] = first
        heights = page_heights(units, plan)
        self.short_pages += [first + k for k in range(1, len(plan)) if heights[k] < MIN_TAIL]
        for k, page in enumerate(plan):
            if k:
                pdf.add_page()
            for block, parts in _runs(units, page):
                if block < 0:
                    self._title(pdf, number, sec)
                else:
                    b = sec.blocks[block]
                    getattr(self, f"_draw_{type(b).__name__.lower()}")(pdf, b, parts)
            if pdf.page_no() != first + k and sec.id not in self.overflows:
                self.overflows.append(sec.id)

    def _title(self, pdf: Any, number: int, sec: Section) -> None:
        _text(pdf, f"{number}  {sec.title}", 15, "B", _INK, h=8)
        pdf.set_draw_color(*_TONE["plain"])
        pdf.set_line_width(0.3)
        pdf.line(pdf.l_margin, pdf.y + 1, pdf.l_margin + pdf.epw, pdf.y + 1)
        pdf.ln(3)
        if sec.lead:
            _text(pdf, sec.lead, 9.5, "I", _MUTED)
            pdf.ln(1)

    def _draw_heading(self, pdf: Any, b: Heading, parts: range) -> None:
        pdf.ln(2)
        _text(pdf, b.text, 11.5, "B", h=6)
        pdf.ln(1)

    def _draw_paragraph(self, pdf: Any, b: Paragraph, parts: range) -> None:
        _text(pdf, b.text)
        pdf.ln(1.5)

    def _draw_note(self, pdf: Any, b: Note, parts: range) -> None:
        y0 = pdf.y
        _text(pdf, b.text, 9, color=_INK)
        _bar(pdf, b.tone, y0)
        pdf.ln(2)

    def _bullet_title(self, pdf: Any, b: Bullets) -> None:
        _text(pdf, b.title, 10, "B", _TONE[b.tone] if b.tone != "plain" else _INK)

    def _draw_bullets(self, pdf: Any, b: Bullets, parts: range) -> None:
        y0 = pdf.y
        offset = 1 if b.title else 0
        for part in parts:
            if b.title and part == 0:
                self._bullet_title(pdf, b)
            else:
                _text(pdf, f"•  {b.items[part - offset]}", 9.5)
        _bar(pdf, b.tone, y0)
        if parts and parts[-1] == len(b.items) - 1 + offset:
            pdf.ln(2)

    def _draw_keyvalues(self, pdf: Any, b: KeyValues, parts: range) -> None:
        self._draw_table(pdf, _kv_table(b), parts, header=False)

    def _draw_table(self, pdf: Any, b: Table, parts: range, header: bool = True) -> None:
        rows = [p - 1 for p in parts if p > 0]
        self._draw_table_run(pdf, b, header, rows, caption=0 in parts)
        if rows and rows[-1] == len(b.rows) - 1:
            pdf.ln(3)

    def _draw_table_run(self, pdf: Any, b: Table, header: bool, rows: list[int], caption: bool) -> None:
        from fpdf.fonts import FontFace

        if caption and b.caption:
            _text(pdf, b.caption, 9.5, "B")
        if not rows and not header:
            return
        n = len(b.columns)
        size = 8.5 if n <= 5 else 7.5 if n <= 8 else 6.5
        pdf.set_font(_FONT, "", size)
        pdf.set_draw_color(*_TONE["plain"])
        pdf.set_line_width(0.2)
        body = [b.rows[k] for k in rows]
        cells = [b.columns, *body] if header else body
        with pdf.table(
            col_widths=b.widths or _fit_widths(pdf, b.columns if header else None, body, size),
            text_align=tuple("RIGHT" if num else "LEFT" for num in b.numeric),
            first_row_as_headings=header,
            headings_style=FontFace(emphasis="BOLD", fill_color=(245, 247, 250)),
            borders_layout="HORIZONTAL_LINES" if header else "NONE",
            line_height=size * 0.55,
            padding=(0.8, 1.2),
            repeat_headings=1,
            width=pdf.epw,
        ) as table:
            for row in cells:
                table.row([breakable(str(c)) for c in row])

    def _draw_figure(self, pdf: Any, b: Figure, parts: range) -> None:
        from ecgprobe.report.html import _png_size

        wpx, hpx = _png_size(b.png)
        w = pdf.epw * min(max(b.width, 0.1), 1.0)
        h = w * hpx / wpx
        max_h = pdf.eph * _FIGURE_MAX
        if h > max_h:  # a tall figure: shrink it, leaving room for the heading kept with it
            w, h = w * max_h / h, max_h
        pdf.image(
            io.BytesIO(b.png), x=pdf.l_margin + (pdf.epw - w) / 2, w=w, h=h, alt_text=b.alt or b.caption
        )
        pdf.ln(1)
        _text(pdf, b.caption, 8.5, "I", _MUTED, h=4.2)
        pdf.ln(3)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def _kv_table(b: KeyValues) -> Table:
    return Table(("", ""), b.rows, caption=b.caption, numeric=(False, False), widths=(1.0, 2.6))


def _runs(units: list[Unit], page: list[int]) -> list[tuple[int, range]]:
    """Consecutive units of one block on a page, as (block, parts)."""
    out: list[tuple[int, list[int]]] = []
    for i in page:
        u = units[i]
        if out and out[-1][0] == u.block:
            out[-1][1].append(u.part)
        else:
            out.append((u.block, [u.part]))
    return [(block, range(parts[0], parts[-1] + 1)) for block, parts in out]


def render_pdf(report: Report, sections: list[Section]) -> bytes:
    """The PDF document for ``sections`` of ``report`` (deterministic for the same input).

    Raises:
        DependencyError: fpdf2 is missing.
    """
    return layout_pdf(report, sections).pdf


def section_pages(report: Report, sections: list[Section]) -> tuple[bytes, dict[str, int]]:
    """The PDF and the page on which each section starts (for tests and the CLI's summary)."""
    done = layout_pdf(report, sections)
    return done.pdf, done.starts


def layout_pdf(report: Report, sections: list[Section]) -> PdfLayout:
    """The PDF with its page plan (see :class:`PdfLayout`)."""
    writer = _Writer(report)
    writer.cover(sections)
    for i, sec in enumerate(sections, start=1):
        writer.section(i, sec)
    return PdfLayout(
        writer.output(),
        dict(writer.section_pages),
        dict(writer.planned),
        tuple(writer.overflows),
        tuple(writer.short_pages),
    )
