"""The :class:`Report`: results in, sections out, written as HTML, PDF and ``results.json``.

A report is data: named :class:`~ecgprobe.analyzers.base.Result` objects plus a JSON context
(dataset summary, encoders, seeds, timings). Its sections are rendered *from that data only*,
by the renderers registered in :mod:`ecgprobe.report.sections`; the results are normalised
through their JSON form when the report is built, so a report rendered straight after the
analyses and one re-rendered later from ``results.json`` (+ ``results.npz``) are identical.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgprobe._io import atomic_write, read_json_npz
from ecgprobe.analyzers.base import Result, to_jsonable
from ecgprobe.exceptions import ConfigError, DataError
from ecgprobe.outputs import Output
from ecgprobe.report.base import FINDINGS, MODES, SECTIONS, Finding
from ecgprobe.report.blocks import Note, Section

__all__ = ["OUTPUT_FILES", "RESULTS_FORMAT", "Report"]

RESULTS_FORMAT = "ecgprobe-report/1"
#: What :meth:`Report.write` produces (checked against ``--force``).
OUTPUT_FILES: dict[str, str] = {
    "json": "results.json",
    "npz": "results.npz",
    "html": "report.html",
    "pdf": "report.pdf",
}
_SEP = "::"


def _normalise(result: Result) -> Result:
    """The result as it will read back from disk (NaN -> None, tuples -> lists, ...)."""
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    return Result.from_dict(doc, {k: np.asarray(v) for k, v in result.arrays.items()})


class Report:
    """A holistic report built from analyzer results.

    Args:
        results: ``{name: Result}``. In ``"model"`` mode names are free (usually the result
            kind); in ``"compare"``/``"scarcity"`` mode per-encoder results are named
            ``"<subject>/<kind>"`` and pairwise results by their kind.
        title: the report's title.
        mode: ``"model"``, ``"compare"`` or ``"scarcity"`` (selects the sections).
        subjects: the encoders' display names, in order (model mode: the one encoder).
        context: JSON-ready facts that are not results: ``dataset`` (identity, split sizes, label
            counts), ``encoders`` (``{subject: identity}``), ``run`` (seeds, timings, command),
            ``skipped`` (``{kind: reason}`` for analyses that could not run), ``created``.

    Raises:
        ConfigError: an unknown mode, or a subject name containing ``/``.

    Example:
        >>> report = Report({"linear_probe": probe_result}, title="My model")  # doctest: +SKIP
        >>> report.write("out/")  # report.html, report.pdf, results.json, results.npz  # doctest: +SKIP
    """

    def __init__(
        self,
        results: Mapping[str, Result],
        *,
        title: str,
        mode: str = "model",
        subjects: Sequence[str] = (),
        context: Mapping[str, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"report mode {mode!r} is not one of {MODES}")
        bad = [s for s in subjects if "/" in s or not s]
        if bad:
            raise ConfigError(f"subject names {bad} are empty or contain '/'; rename them")
        self.title = str(title)
        self.mode = mode
        self.subjects = [str(s) for s in subjects]
        self.context: dict[str, Any] = json.loads(json.dumps(to_jsonable(dict(context or {}))))
        self.results: dict[str, Result] = {str(k): _normalise(r) for k, r in results.items()}

    # ------------------------------------------------------------------------- lookups
    def has(self, kind: str, subject: str | None = None) -> bool:
        """Whether a result of ``kind`` (for ``subject``) is present."""
        return self.get(kind, subject) is not None

    def get(self, kind: str, subject: str | None = None) -> Result | None:
        """The first result of ``kind`` (belonging to ``subject``, or to no subject), or None."""
        for name, res in self.results.items():
            owner = name.split("/", 1)[0] if "/" in name else None
            if res.kind == kind and owner == subject:
                return res
        return None

    def require(self, kind: str, subject: str | None = None) -> Result:
        """The result of ``kind`` (for ``subject``) that a section or rule was registered for.

        Raises:
            ConfigError: the report holds no such result.
        """
        res = self.get(kind, subject)
        if res is None:
            whose = f" of subject {subject!r}" if subject is not None else ""
            raise ConfigError(
                f"the report has no {kind!r} result{whose} (it has {sorted(self.kinds)}); "
                f"add the {kind!r} analysis to the report's results"
            )
        return res

    def by_subject(self, kind: str) -> dict[str, Result]:
        """``{subject: result}`` for every subject with a result of ``kind``, in subject order."""
        out = {s: self.get(kind, s) for s in self.subjects}
        return {s: r for s, r in out.items() if r is not None}

    def name_of(self, result: Result) -> str:
        """The name under which ``result`` is stored (for citing sources)."""
        for name, res in self.results.items():
            if res is result:
                return name
        return result.kind

    @property
    def kinds(self) -> set[str]:
        """Every result kind present."""
        return {r.kind for r in self.results.values()}

    # ------------------------------------------------------------------------ sections
    def findings(self) -> list[Finding]:
        """The summary statements, from the registered rules whose kinds are all present."""
        out: list[Finding] = []
        for entry in sorted(FINDINGS, key=lambda e: (e.info["order"], e.name)):
            kinds, modes = entry.info["kinds"], entry.info["modes"]
            if self.mode in modes and all(k in self.kinds for k in kinds):
                out.extend(entry.obj(self))
        return out

    def sections(self) -> list[Section]:
        """The rendered sections, in order (a section whose results are absent is left out,
        or shown with the reason when the analysis was skipped).

        Rendered once per state of the report: the HTML and the PDF (and every later write)
        share the same figures instead of drawing each one again.
        """
        state = (
            self.title,
            self.mode,
            tuple(self.subjects),
            tuple((k, id(v)) for k, v in self.results.items()),
            json.dumps(self.context, sort_keys=True, default=str),
        )
        cached = getattr(self, "_sections_cache", None)
        if cached is None or cached[0] != state:
            cached = (state, self._render_sections())
            self._sections_cache = cached
        return list(cached[1])

    def _render_sections(self) -> list[Section]:
        specs = sorted((e.obj for e in SECTIONS if self.mode in e.obj.modes), key=lambda s: (s.order, s.id))
        skipped = self.context.get("skipped", {})
        out: list[Section] = []
        for spec in specs:
            if spec.kinds and not any(k in self.kinds for k in spec.kinds):
                reasons = [f"{k}: {skipped[k]}" for k in spec.kinds if k in skipped]
                if reasons:
                    out.append(
                        Section(spec.id, spec.title, [Note("Not computed. " + " ".join(reasons), "warning")])
                    )
                continue
            blocks = spec.render(self)
            if blocks is not None:
                out.append(Section(spec.id, spec.title, list(blocks), lead=spec.lead))
        return out

    # -------------------------------------------------------------------------- output
    def to_html(self) -> str:
        """The self-contained HTML document."""
        from ecgprobe.report.html import render_html

        return render_html(self, self.sections())

    def to_pdf(self) -> bytes:
        """The PDF document (same sections as the HTML)."""
        from ecgprobe.report.pdf import render_pdf

        return render_pdf(self, self.sections())

    def save_results(self, out: str | Path) -> Path:
        """Write ``results.json`` (+ ``results.npz`` with every array) into folder ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {
            "format": RESULTS_FORMAT,
            "title": self.title,
            "mode": self.mode,
            "subjects": self.subjects,
            "context": self.context,
            "results": {name: res.to_dict() for name, res in self.results.items()},
        }
        arrays = {
            f"{name}{_SEP}{key}": np.asarray(arr)
            for name, res in self.results.items()
            for key, arr in res.arrays.items()
        }
        if arrays:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            blob = buf.getvalue()
            atomic_write(out / OUTPUT_FILES["npz"], blob)
            doc["arrays_file"] = {"name": OUTPUT_FILES["npz"], "sha256": hashlib.sha256(blob).hexdigest()}
        path = out / OUTPUT_FILES["json"]
        atomic_write(path, json.dumps(doc, indent=1, allow_nan=False).encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Report:
        """Read a report saved by :meth:`save_results` (a folder or its ``results.json``).

        Raises:
            DataError: a missing or invalid file, or an array file that does not match its checksum.
        """
        p = Path(path)
        if p.is_dir():
            p = p / OUTPUT_FILES["json"]
        doc, flat = read_json_npz(
            p,
            what="report results file",
            redo="re-run the report",
            missing="pass a report folder or its results.json",
            missing_npz=f"copy it beside {p.name}",
        )
        if doc.get("format") != RESULTS_FORMAT:
            raise DataError(
                f"{p} is not an ecgprobe report results file (format {doc.get('format')!r}, "
                f"expected {RESULTS_FORMAT!r})"
            )
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for key, value in flat.items():
            name, _, arr = key.partition(_SEP)
            arrays.setdefault(name, {})[arr] = value
        results = {
            name: Result.from_dict(rdoc, arrays.get(name, {})) for name, rdoc in doc["results"].items()
        }
        return cls(
            results, title=doc["title"], mode=doc["mode"], subjects=doc["subjects"], context=doc["context"]
        )

    @staticmethod
    def output_names(formats: Iterable[str] = ("html", "pdf")) -> list[str]:
        """The files :meth:`write` produces for ``formats`` (results first), to check before any work.

        Raises:
            ConfigError: an unknown format.
        """
        formats = list(formats)
        unknown = [f for f in formats if f not in ("html", "pdf")]
        if unknown or not formats:
            raise ConfigError(f"unknown report formats {unknown or formats}; use html and/or pdf")
        return [OUTPUT_FILES[k] for k in ("json", "npz", *formats)]

    def write_files(self, folder: str | Path, formats: Iterable[str] = ("html", "pdf")) -> dict[str, Path]:
        """Write the results and the requested formats into ``folder`` as they are, without the
        checks of :meth:`write`: for a caller that stages the folder itself
        (:meth:`ecgprobe.outputs.Output.staged`) because it writes more files beside them.

        Returns:
            ``{"json" | "npz" | "html" | "pdf": path}``.
        """
        formats = list(formats)
        self.output_names(formats)
        out = Path(folder)
        written = {"json": self.save_results(out)}
        if (out / OUTPUT_FILES["npz"]).exists():
            written["npz"] = out / OUTPUT_FILES["npz"]
        sections = self.sections()
        if "html" in formats:
            from ecgprobe.report.html import render_html

            written["html"] = atomic_write(
                out / OUTPUT_FILES["html"], render_html(self, sections, with_pdf="pdf" in formats).encode()
            )
        if "pdf" in formats:
            from ecgprobe.report.pdf import render_pdf

            written["pdf"] = atomic_write(out / OUTPUT_FILES["pdf"], render_pdf(self, sections))
        return written

    def write(
        self,
        out: str | Path,
        *,
        formats: Iterable[str] = ("html", "pdf"),
        force: bool = False,
        option: str = "--out",
    ) -> dict[str, Path]:
        """Write ``results.json``/``.npz`` and the requested formats into folder ``out``, all or
        nothing (see :class:`ecgprobe.outputs.Output`).

        Args:
            out: the report folder (created when needed).
            formats: ``"html"`` and/or ``"pdf"``.
            force: replace the files of an earlier report instead of refusing.
            option: how the caller names ``out`` in messages (``"--out"``, a study's ``"out:"``).

        Returns:
            ``{"json" | "npz" | "html" | "pdf": path}`` of the files written.

        Raises:
            ConfigError: outputs exist and ``force`` is false, or an unknown format.
            OutputError: ``out`` is not a writable folder, or the disk filled while writing (then
                ``out`` holds what it held before).
        """
        formats = list(formats)
        output = Output(out, self.output_names(formats), force=force, option=option)
        with output.staged() as tmp:
            written = self.write_files(tmp, formats)
        return {kind: output.path(path.name) for kind, path in written.items()}
