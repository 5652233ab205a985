"""Registries of section renderers and of summary rules, and their decorators.

A section renderer is a function ``render(report) -> list[Block] | None`` registered with
:func:`section` for the result kinds it shows and the report modes it belongs to; returning
``None`` leaves the section out. A summary rule (:func:`finding`) turns numbers of the results
into sentences for the auto-written summary. Renderer modules live in
:mod:`ecgprobe.report.sections` (one per result family) and are discovered, so a new section is
one new file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ecgprobe.registry import Registry

if TYPE_CHECKING:
    from ecgprobe.analyzers.base import Result
    from ecgprobe.report.blocks import Block
    from ecgprobe.report.document import Report

__all__ = [
    "FINDINGS",
    "MODES",
    "SECTIONS",
    "Finding",
    "SectionSpec",
    "finding",
    "result_finding",
    "result_section",
    "section",
    "subjects_section",
]

#: Report modes: one model, two models compared, a data-scarcity study over several models.
MODES: tuple[str, ...] = ("model", "compare", "scarcity", "benchmark")

Renderer = Callable[["Report"], "list[Block] | None"]
#: A renderer of one result: ``render(report, result)``.
ResultRenderer = Callable[["Report", "Result"], "list[Block] | None"]
#: A renderer of one result kind per subject: ``render(report, {subject: result})``.
SubjectsRenderer = Callable[["Report", "Mapping[str, Result]"], "list[Block] | None"]


@dataclass(frozen=True)
class SectionSpec:
    """A registered section: where it goes and which results it needs.

    Attributes:
        id: the HTML anchor and registry name.
        title: the heading.
        order: position in the report (ascending).
        kinds: result kinds it shows (empty: it is always rendered, e.g. provenance).
        modes: the report modes it appears in.
        render: the renderer.
        lead: one sentence under the heading saying what the section answers.
    """

    id: str
    title: str
    order: int
    kinds: tuple[str, ...]
    modes: tuple[str, ...]
    render: Renderer
    lead: str = ""


SECTIONS: Registry[SectionSpec] = Registry("report section")


def section(
    id: str,
    *,
    title: str,
    order: int,
    kinds: Iterable[str] = (),
    modes: Iterable[str] = ("model",),
    lead: str = "",
) -> Callable[[Renderer], Renderer]:
    """Register a section renderer.

    Raises:
        ConfigError: an id registered twice.

    Example:
        >>> @section("my_section", title="Mine", order=99, kinds=("linear_probe",))  # doctest: +SKIP
        ... def render(report):
        ...     return [Paragraph("hello")]
    """

    def decorator(fn: Renderer) -> Renderer:
        SECTIONS.add(
            id,
            SectionSpec(
                id=id,
                title=title,
                order=order,
                kinds=tuple(kinds),
                modes=tuple(modes),
                render=fn,
                lead=lead,
            ),
        )
        return fn

    return decorator


def result_section(
    id: str, *, kind: str, title: str, order: int, lead: str = ""
) -> Callable[[ResultRenderer], Renderer]:
    """Register the renderer of a model-report section that shows the one result of ``kind``.

    The section is rendered only when the report holds that result, so the renderer is handed it:
    it is written as ``render(report, result)``; the registered (and returned) function takes
    the report alone, like any :func:`section` renderer.

    Raises:
        ConfigError: an id registered twice.

    Example:
        >>> @result_section("my_probe", kind="linear_probe", title="Mine", order=99)  # doctest: +SKIP
        ... def render(report, res):
        ...     return [Paragraph(f"{res.metrics['macro_auroc']:.3f}")]
    """

    def decorator(fn: ResultRenderer) -> Renderer:
        @functools.wraps(fn)
        def render(report: Report) -> list[Block] | None:
            return fn(report, report.require(kind))

        return section(id, title=title, order=order, kinds=(kind,), lead=lead)(render)

    return decorator


def subjects_section(
    id: str,
    *,
    kind: str,
    title: str,
    order: int,
    modes: Iterable[str] = ("compare",),
    lead: str = "",
) -> Callable[[SubjectsRenderer], Renderer]:
    """Register the renderer of a multi-encoder section that shows the results of ``kind`` of
    every subject: it is written as ``render(report, {subject: result})`` and left out when no
    subject has one; the registered (and returned) function takes the report alone.

    Raises:
        ConfigError: an id registered twice.
    """

    def decorator(fn: SubjectsRenderer) -> Renderer:
        @functools.wraps(fn)
        def render(report: Report) -> list[Block] | None:
            results = report.by_subject(kind)
            return fn(report, results) if results else None

        return section(id, title=title, order=order, kinds=(kind,), modes=modes, lead=lead)(render)

    return decorator


@dataclass(frozen=True)
class Finding:
    """One generated statement of the summary.

    Attributes:
        text: the sentence (numbers formatted from the results).
        tone: ``"good"`` (a strength), ``"bad"`` (a weakness), ``"inconclusive"`` (the interval
            or the sample cannot decide; see :mod:`ecgprobe.report.claims`) or ``"info"``.
        rule: the rule that produced it (a registered name).
        source: where its numbers are in ``results.json`` (``"linear_probe.tables.per_label"``).
    """

    text: str
    tone: Literal["good", "bad", "inconclusive", "info"]
    rule: str
    source: str


Rule = Callable[["Report"], "Iterable[Finding]"]
FINDINGS: Registry[Rule] = Registry("summary rule")


def finding(
    name: str, *, kinds: Iterable[str], modes: Iterable[str] = ("model",), order: int = 50
) -> Callable[[Rule], Rule]:
    """Register a summary rule run when the report has results of every kind in ``kinds``;
    ``order`` places its sentences in the summary (the order of the sections they summarise)."""

    def decorator(fn: Rule) -> Rule:
        FINDINGS.add(name, fn, kinds=tuple(kinds), modes=tuple(modes), order=order)
        return fn

    return decorator


def result_finding(
    name: str, *, kind: str, modes: Iterable[str] = ("model",), order: int = 50
) -> Callable[[Callable[[Report, Result], Iterable[Finding]]], Rule]:
    """Register a summary rule about the one result of ``kind``: it is written as
    ``rule(report, result)``; the registered (and returned) function takes the report alone.

    Raises:
        ConfigError: a name registered twice.
    """

    def decorator(fn: Callable[[Report, Result], Iterable[Finding]]) -> Rule:
        @functools.wraps(fn)
        def rule(report: Report) -> Iterable[Finding]:
            return fn(report, report.require(kind))

        return finding(name, kinds=(kind,), modes=modes, order=order)(rule)

    return decorator
