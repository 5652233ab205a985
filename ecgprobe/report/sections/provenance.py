"""Provenance: which model, which weights, which input contract, which data, seeds and versions."""

from __future__ import annotations

import json
from typing import Any

from ecgprobe.report.base import section
from ecgprobe.report.blocks import Block, Heading, KeyValues, Note, Table, fmt
from ecgprobe.report.document import Report

_SPEC_KEYS = (
    "fs",
    "leads",
    "n_samples",
    "baseline",
    "bandpass",
    "filter_order",
    "notch",
    "normalization",
    "units",
)


def _short(value: Any) -> str:
    if value is None or value == "" or value == {} or value == []:
        return "–"
    if isinstance(value, (list, tuple)):
        return (
            " ".join(str(v) for v in value) if all(isinstance(v, str) for v in value) else json.dumps(value)
        )
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return f"{value:g}" if isinstance(value, float) else str(value)


def encoder_identity(report: Report, subject: str | None) -> dict[str, Any]:
    """The encoder's identity: from the report context, else from any result's provenance."""
    known = report.context.get("encoders", {})
    if subject is not None and subject in known:
        return known[subject]
    if subject is None and len(known) == 1:
        return next(iter(known.values()))
    for name, res in report.results.items():
        owner = name.split("/", 1)[0] if "/" in name else None
        if owner == subject:
            enc = res.provenance.get("embeddings", {}).get("encoder")
            if enc:
                return enc
    return {}


def embedding_facts(report: Report, subject: str | None) -> dict[str, Any]:
    """Layer, dimension, window and precision of the embeddings the results were computed on."""
    for name, res in report.results.items():
        owner = name.split("/", 1)[0] if "/" in name else None
        emb = res.provenance.get("embeddings")
        if owner == subject and emb:
            return emb
    return {}


def _model_rows(report: Report, subject: str | None) -> list[tuple[str, str]]:
    enc = encoder_identity(report, subject)
    emb = embedding_facts(report, subject)
    rows = [
        ("encoder", _short(enc.get("encoder") or subject)),
        ("family", _short(enc.get("family"))),
        ("options", _short(enc.get("options"))),
        ("weights sha256", _short(enc.get("weights_sha256"))),
        ("checkpoint", _short(enc.get("checkpoint"))),
        (
            "embedding",
            f"layer {_short(emb.get('layer'))}, {_short(emb.get('dim') or enc.get('embed_dim'))} dimensions, pooling {_short(enc.get('pooling'))}",
        ),
        (
            "extraction",
            f"window {_short(emb.get('window'))}, hop {_short(emb.get('hop'))}, precision {_short(emb.get('precision'))}",
        ),
        ("embeddings key", _short(emb.get("key"))),
    ]
    return [r for r in rows if not (r[0] == "checkpoint" and r[1] == "–")]


def _spec_rows(enc: dict[str, Any]) -> list[tuple[str, str]]:
    spec = enc.get("spec") or {}
    rows = [(k, _short(spec.get(k))) for k in _SPEC_KEYS if k in spec]
    if spec.get("notes"):
        rows.append(("notes", _short(spec["notes"])))
    return rows


def dataset_blocks(report: Report) -> list[Block]:
    """Dataset identity, split sizes and label counts per split (shared with the comparison)."""
    ds = report.context.get("dataset", {})
    if not ds:
        return [Note("No dataset description was recorded with these results.", "warning")]
    blocks: list[Block] = [Heading("Dataset")]
    sizes = ds.get("split_sizes", {})
    rows = [
        ("dataset", _short(ds.get("dataset"))),
        ("options", _short(ds.get("params"))),
        ("records", f"{fmt(ds.get('n_records'))} ({fmt(ds.get('n_patients'))} patients)"),
        ("splits", ", ".join(f"{k} {fmt(v)}" for k, v in sizes.items()) or "–"),
        (
            "signal",
            f"{_short(ds.get('fs'))} Hz × {_short(ds.get('n_samples'))} samples, leads {_short(ds.get('leads'))}",
        ),
        ("record ids sha256", _short(ds.get("ids_sha256"))),
    ]
    if ds.get("age"):
        rows.append(
            ("age", f"median {fmt(ds['age'].get('median'), 0)}, missing {fmt(ds['age'].get('missing'))}")
        )
    if ds.get("sex"):
        rows.append(("sex", ", ".join(f"{k} {fmt(v)}" for k, v in ds["sex"].items())))
    blocks.append(KeyValues(tuple(rows)))
    counts = ds.get("label_counts") or []
    if counts:
        splits = [s for s in ("train", "val", "test") if s in counts[0]]
        blocks.append(
            Table(
                ("label", *splits, "prevalence"),
                tuple(
                    (str(r["label"]), *(fmt(r.get(s)) for s in splits), fmt(r.get("prevalence"), 3))
                    for r in counts
                ),
                caption="Positive records per label and split",
            )
        )
    blocks += [Note(str(n)) for n in ds.get("notes", [])]
    return blocks


def analyses_table(report: Report) -> Table:
    """One row per stored result: kind, seed, runtime and the settings that matter."""
    rows = []
    for name, res in report.results.items():
        params = {k: v for k, v in res.params.items() if v is not None and not isinstance(v, (dict, list))}
        settings = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
        )
        rows.append((name, res.kind, _short(res.seed), fmt(res.runtime_s, 1), settings or "–"))
    return Table(
        ("result", "kind", "seed", "runtime (s)", "settings"),
        tuple(rows),
        caption="Analyses (all stored in results.json)",
        widths=(14, 10, 5, 7, 40),
    )


def versions_rows(report: Report) -> list[tuple[str, str]]:
    """Library versions recorded by the results (the union; conflicting values joined)."""
    seen: dict[str, list[str]] = {}
    for res in report.results.values():
        for lib, ver in res.versions.items():
            if str(ver) not in seen.setdefault(lib, []):
                seen[lib].append(str(ver))
    return [(lib, " / ".join(v)) for lib, v in sorted(seen.items())]


@section(
    "provenance",
    title="Appendix: provenance",
    order=900,
    modes=("model", "compare", "scarcity"),
    lead="What was measured: the model and its weights, its input contract, the data, the seeds and the software.",
)
def render(report: Report) -> list[Block]:
    blocks: list[Block] = []
    subjects: list[str | None] = list(report.subjects) if report.mode != "model" else [None]
    for subject in subjects:
        blocks.append(Heading("Model" if subject is None else f"Model: {subject}"))
        blocks.append(KeyValues(tuple(_model_rows(report, subject))))
        spec = _spec_rows(encoder_identity(report, subject))
        if spec:
            blocks.append(KeyValues(tuple(spec), caption="Input contract (what the model was given)"))
    blocks += dataset_blocks(report)
    blocks.append(Heading("Analyses, seeds and runtime"))
    blocks.append(analyses_table(report))
    run = report.context.get("run", {})
    facts = [(k.replace("_", " "), _short(v)) for k, v in run.items() if k != "timings"]
    facts += [(f"wall time, this run: {k}", f"{fmt(v, 1)} s") for k, v in run.get("timings", {}).items()]
    if facts:
        blocks.append(KeyValues(tuple(facts), caption="Run"))
    versions = versions_rows(report)
    if versions:
        blocks.append(KeyValues(tuple(versions), caption="Software versions"))
    return blocks
