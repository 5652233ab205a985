"""The Report: saved results re-render identically; escaping; overwrite protection; broken files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ecgprobe.analyzers.base import Result
from ecgprobe.exceptions import ConfigError, DataError
from ecgprobe.report import Report
from ecgprobe.report.blocks import fmt


def test_rerender_from_results_json_alone_is_identical(computed, tmp_path):
    html = (computed.model_dir / "report.html").read_text()
    pdf = (computed.model_dir / "report.pdf").read_bytes()
    again = Report.load(computed.model_dir / "results.json")
    assert again.to_html() == html
    assert again.to_pdf() == pdf
    # and written elsewhere from the copy of results.json + results.npz only
    for name in ("results.json", "results.npz"):
        (tmp_path / name).write_bytes((computed.model_dir / name).read_bytes())
    Report.load(tmp_path).write(tmp_path / "again")
    assert (tmp_path / "again" / "report.html").read_text() == html


def test_every_section_of_a_model_report_is_present(computed):
    ids = re.findall(r'<section id="([^"]+)"', (computed.model_dir / "report.html").read_text())
    assert ids == [
        "summary",
        "accuracy",
        "calibration",
        "scarcity",
        "geometry",
        "attribution",
        "subgroups",
        "provenance",  # results first, provenance as the appendix
    ]
    cmp_ids = re.findall(r'<section id="([^"]+)"', (computed.compare_dir / "report.html").read_text())
    assert cmp_ids == ["summary", "paired", "similarity", "maps", "scarcity_compare", "provenance"]


def test_numbers_in_the_report_come_from_results_json(computed):
    doc = json.loads((computed.model_dir / "results.json").read_text())
    html = (computed.model_dir / "report.html").read_text()
    lp = doc["results"]["linear_probe"]
    assert fmt(lp["metrics"]["macro_auroc"]) in html
    for row in lp["tables"]["per_label"]:
        if row["evaluated"]:
            assert f"{fmt(row['auroc'])} [{fmt(row['auroc_ci_low'])}, {fmt(row['auroc_ci_high'])}]" in html
    assert doc["context"]["encoders"]["tiny-test"]["weights_sha256"] in html
    assert doc["context"]["dataset"]["ids_sha256"] in html


def test_summary_sentences_are_generated_from_the_numbers(computed):
    report = computed.report
    lp = report.get("linear_probe")
    found = {f.rule: f for f in report.findings()}
    assert fmt(lp.metrics["macro_auroc"]) in found["probe_macro"].text
    rows = [r for r in lp.tables["per_label"] if r["evaluated"]]
    chance = [r["label"] for r in rows if r["auroc_ci_low"] <= 0.5 <= r["auroc_ci_high"]]
    text = found["probe_chance"].text
    assert (f"{len(chance)} of {len(rows)}" in text) if chance else ("above chance" in text)
    assert found["label_efficiency"].source.startswith("scarcity.metrics")


def test_html_injection_is_escaped(synthetic_300, tmp_path, chromium):
    import ecgprobe
    from ecgprobe.analyzers import ANALYZERS

    if "linear_probe" not in ANALYZERS:
        pytest.skip("the linear probe is not in this checkout")
    from ecgprobe.settings import RunSettings
    from ecgprobe.workflows import model_report

    evil = ['<script>alert("x")</script>', 'it\'s "quoted"', "<img src=x onerror=alert(1)>"]
    names = list(synthetic_300.label_names)
    names[:3] = evil
    rs = synthetic_300.with_labels(names, synthetic_300.y, synthetic_300.task)
    emb = ecgprobe.extract(ecgprobe.create_encoder("tiny-test", dim=8), rs, cache_dir=None, progress=False)
    rep = model_report(
        emb,
        rs,
        title="<script>document.title='owned'</script>",
        analyses=["linear_probe"],
        settings=RunSettings(profile="quick", progress=False),
    )
    out = rep.write(tmp_path / "evil")
    html = out["html"].read_text()
    from ecgprobe.report.html import SORT_SCRIPT

    # the only script is the report's own sorter; no user string became markup
    assert html.count("<script") == 1 and f"<script>{SORT_SCRIPT}</script>" in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "it&#39;s &#34;quoted&#34;" in html
    found = chromium.check(out["html"])
    assert found["scripts"] == 1 and found["title"] == "<script>document.title='owned'</script>"
    assert not found["errors"] and not found["console"]


def test_existing_outputs_are_not_overwritten_without_force(computed, tmp_path):
    rep = Report.load(computed.model_dir)
    rep.write(tmp_path, formats=["html"])
    before = (tmp_path / "report.html").stat().st_mtime_ns
    with pytest.raises(ConfigError, match="--force"):
        rep.write(tmp_path, formats=["html"])
    assert (tmp_path / "report.html").stat().st_mtime_ns == before
    rep.write(tmp_path, formats=["html"], force=True)


def test_damaged_saved_results_are_refused(computed, tmp_path):
    for name in ("results.json", "results.npz"):
        (tmp_path / name).write_bytes((computed.model_dir / name).read_bytes())
    blob = bytearray((tmp_path / "results.npz").read_bytes())
    blob[-10] ^= 0xFF
    (tmp_path / "results.npz").write_bytes(bytes(blob))
    with pytest.raises(DataError, match="checksum"):
        Report.load(tmp_path)
    (tmp_path / "results.npz").unlink()
    with pytest.raises(DataError, match="missing"):
        Report.load(tmp_path)
    (tmp_path / "results.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not an ecgprobe report"):
        Report.load(tmp_path)


def test_skipped_analyses_are_shown_with_their_reason():
    r = Result(kind="dummy", arrays={"x": np.zeros(2)})
    rep = Report({"dummy": r}, title="t", context={"skipped": {"projection": "umap-learn is not installed"}})
    geometry = [s for s in rep.sections() if s.id == "geometry"]
    assert geometry and "umap-learn is not installed" in geometry[0].blocks[0].text
    with pytest.raises(ConfigError, match="'/'"):
        Report({}, title="t", subjects=["a/b"])
