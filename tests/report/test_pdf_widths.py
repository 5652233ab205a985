"""PDF table columns are sized from the text: no word is ever broken (issue 17: the "labels"
header of the accuracy table wrapped as "label / s"), and the columns fill the text width."""

from __future__ import annotations

import re

import pytest

from ecgprobe.report import pdf as pdfmod


@pytest.fixture
def doc():
    pdf = pdfmod._document(None, scratch=True)  # the scratch document only measures
    pdf.add_page()
    return pdf


def test_every_word_fits_its_column_and_the_columns_fill_the_width(doc):
    columns = ("probe", "macro AUROC", "macro AUPRC", "macro F1", "macro Brier", "macro ECE", "labels")
    cell = "0.860 [0.818, 0.895]"
    rows = [("linear probe", *[cell] * 5, "5 of 5"), ("kNN probe", *[cell] * 5, "5 of 5")]
    widths = pdfmod._fit_widths(doc, columns, rows, 8.5)
    assert sum(widths) == pytest.approx(doc.epw)
    for style, cells in (("B", [columns]), ("", rows)):
        doc.set_font(pdfmod._FONT, style, 8.5)
        for row in cells:
            for j, text in enumerate(row):
                longest = max(doc.get_string_width(w) for w in re.split(r"\s+", text))
                assert longest + 2 * pdfmod._PAD_MM <= widths[j], (text, widths[j])


def test_columns_share_the_width_by_their_text(doc):
    widths = pdfmod._fit_widths(doc, ("a", "bbbbbbbbbbbb"), [("x", "y")], 8.5)
    assert widths[1] > 3 * widths[0] and sum(widths) == pytest.approx(doc.epw)
    assert pdfmod._fit_widths(doc, None, [("x", "yy")], 8.5)[1] > 0  # a table without a header
