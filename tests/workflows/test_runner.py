"""The workflow runner: analyses run after what they ``require``, receive its result, are cached
under a key that covers it, and are skipped (saying why) when it is missing."""

from __future__ import annotations

import pytest

import ecgprobe
from ecgprobe.analyzers import ANALYZERS
from ecgprobe.exceptions import ConfigError
from ecgprobe.settings import RunSettings
from ecgprobe.workflows import ResultCache, plan_analyses, run_analyses
from ecgprobe.workflows.plan import PROFILES, order


@pytest.fixture(scope="module")
def inputs():
    records = ecgprobe.load_dataset("synthetic", n_records=120, fs=100.0, seed=5)
    emb = ecgprobe.extract(
        ecgprobe.create_encoder("tiny-test", dim=8), records, cache_dir=None, progress=False
    )
    return emb, records


def test_order_follows_requires_not_names():
    plan = {"operating_points": {}, "subgroups": {}, "linear_probe": {}, "knn_probe": {}}
    names = order(plan)
    assert names.index("linear_probe") < names.index("operating_points")
    assert names.index("linear_probe") < names.index("subgroups")
    assert order({"operating_points": {}}) == ["operating_points"]  # a missing upstream does not block


def test_plan_precedence_user_over_run_over_profile():
    quick = RunSettings(profile="quick", n_resamples=50, seed=3)
    plan = plan_analyses({"linear_probe": {"n_resamples": 7}, "knn_probe": None}, quick)
    assert plan["linear_probe"]["n_resamples"] == 7 and plan["linear_probe"]["seed"] == 3
    assert plan["knn_probe"]["n_resamples"] == 50
    assert (
        plan_analyses(["knn_probe"], RunSettings(profile="quick"))["knn_probe"]["n_resamples"]
        == (PROFILES["quick"]["knn_probe"]["n_resamples"])
    )
    with pytest.raises(ConfigError, match="unknown settings \\['n_resample'\\]"):
        plan_analyses({"linear_probe": {"n_resample": 3}})
    with pytest.raises(ConfigError, match="unknown analysis 'linear'"):
        plan_analyses(["linear"])


def test_downstream_gets_the_upstream_result_and_its_cache_key(inputs, tmp_path):
    emb, records = inputs
    settings = RunSettings(profile="quick", progress=False, cache_dir=tmp_path)
    plan = plan_analyses(["operating_points", "linear_probe"], settings)
    first = run_analyses(emb, records, plan, settings=settings, cache=ResultCache(tmp_path))
    assert list(first.results) == ["operating_points", "linear_probe"]  # plan order kept
    points = first.results["operating_points"]
    assert "probe" not in points.params  # an input, not a setting
    cache = ResultCache(tmp_path)
    again = run_analyses(emb, records, plan, settings=settings, cache=cache)
    assert len(cache.hits) == 2 and again.keys == first.keys
    # another probe setting changes the probe's key and so the operating points' key too
    other = plan_analyses({"operating_points": {}, "linear_probe": {"n_resamples": 120}}, settings)
    third = run_analyses(emb, records, other, settings=settings, cache=ResultCache(tmp_path))
    assert third.keys["linear_probe"] != first.keys["linear_probe"]
    assert third.keys["operating_points"] != first.keys["operating_points"]


def test_missing_upstream_skips_with_the_reason(inputs):
    emb, records = inputs
    settings = RunSettings(profile="quick", progress=False)
    done = run_analyses(emb, records, plan_analyses(["subgroups"], settings), settings=settings)
    assert not done.results and "needs the linear_probe result" in done.skipped["subgroups"]


def test_every_requirement_names_a_registered_analysis():
    for name in ANALYZERS.list():
        for upstream in ANALYZERS.get(name).requires.values():
            assert upstream in ANALYZERS, (name, upstream)


def test_progress_names_only_the_analyses_running_now(inputs, monkeypatch):
    """Issue 17: the bar sat on "probe_shap" for 14 minutes after it had finished. Every
    postfix the bar shows must name exactly the analyses started and not yet finished."""
    from ecgprobe.workflows import runner

    shown: list[tuple[str, frozenset[str], frozenset[str]]] = []
    state = {"running": set()}
    original_start, original_done = runner._Progress.start, runner._Progress.done

    def start(self, name):
        state["running"].add(name)
        original_start(self, name)
        shown.append(("start", frozenset(state["running"]), frozenset(self.running)))

    def done(self, name):
        state["running"].discard(name)
        original_done(self, name)
        shown.append(("done", frozenset(state["running"]), frozenset(self.running)))

    monkeypatch.setattr(runner._Progress, "start", start)
    monkeypatch.setattr(runner._Progress, "done", done)
    emb, records = inputs
    settings = RunSettings(profile="quick", progress=True, workers=2)
    plan = plan_analyses(["operating_points", "linear_probe", "knn_probe"], settings)
    run_analyses(emb, records, plan, settings=settings)
    assert [e for e, _, _ in shown].count("done") == 3
    assert all(truth == named for _, truth, named in shown), shown
    assert shown[-1][2] == frozenset()  # nothing is said to run once all have finished
