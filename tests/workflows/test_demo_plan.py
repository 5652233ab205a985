"""The demo's plan: what it reports on, without running it."""

from __future__ import annotations

from ecgprobe.workflows import demo
from ecgprobe.workflows.study import planned_reports


def _planned(monkeypatch, with_openecg: bool) -> list[tuple[str, tuple[str, ...]]]:
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: object() if with_openecg else None)
    study = demo.demo_study("out", progress=False)
    return [(p.kind, p.subjects) for p in planned_reports(study)]


def test_the_random_weights_floor_gets_its_own_model_report_beside_the_pretrained_one(monkeypatch):
    # the planted site confounder shows in random-resnet1d's report (its AF score is the site's)
    plan = _planned(monkeypatch, True)
    assert ("model", ("openecg-codec-3lead",)) in plan and ("model", ("random-resnet1d",)) in plan
    assert ("compare", ("openecg-codec-3lead", "random-resnet1d")) in plan
    plan = _planned(monkeypatch, False)
    assert [p for p in plan if p[0] == "model"] == [("model", ("random-resnet1d",))]
    assert ("compare", ("random-resnet1d", "handcrafted")) in plan
