"""Holistic reports: sections rendered from analyzer results, as HTML, PDF and ``results.json``.

::

    from ecgprobe.report import Report
    report = Report({"linear_probe": probe_result, "knn_probe": knn_result}, title="My encoder")
    report.write("out/")                  # report.html, report.pdf, results.json, results.npz
    Report.load("out/").write("again/")   # identical documents, from the saved results alone

Section renderers are registered per result kind (:func:`section`) in
:mod:`ecgprobe.report.sections`; plotting functions in :mod:`ecgprobe.report.plots` are pure
functions of a result drawing on an ``ax=``.
"""

from ecgprobe.report import sections as _sections  # noqa: F401  (registers the renderers)
from ecgprobe.report.base import FINDINGS, SECTIONS, Finding, finding, section
from ecgprobe.report.blocks import Bullets, Figure, Heading, KeyValues, Note, Paragraph, Section, Table
from ecgprobe.report.document import OUTPUT_FILES, Report

__all__ = [
    "FINDINGS",
    "OUTPUT_FILES",
    "SECTIONS",
    "Bullets",
    "Figure",
    "Finding",
    "Heading",
    "KeyValues",
    "Note",
    "Paragraph",
    "Report",
    "Section",
    "Table",
    "finding",
    "section",
]
