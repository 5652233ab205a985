"""RunSettings is built once and every stage receives what it says: the encoder, the extraction
and the analyses get the device of the run (regression: a study's ``extraction: {device: cpu}``
reached create_encoder but not extract(), and report/compare/run kept --device from the
analyses)."""

from __future__ import annotations

import pytest

import ecgprobe
from ecgprobe.analyzers import ANALYZERS
from ecgprobe.cli import main
from ecgprobe.exceptions import ConfigError
from ecgprobe.settings import FINAL_LAYER, RunSettings, parse_layers, resolve_device, split_list


@pytest.fixture
def seen(monkeypatch):
    """Record the device given to create_encoder, extract and the device-using analyzers."""
    got: dict[str, list[str]] = {"create_encoder": [], "extract": [], "linear_probe": [], "knn_probe": []}
    real_create, real_extract = ecgprobe.encoders.create_encoder, ecgprobe.extract.extract

    def create(*args, device="auto", **kw):
        got["create_encoder"].append(str(device))
        return real_create(*args, device=device, **kw)

    def extract(*args, device="auto", **kw):
        got["extract"].append(str(device))
        return real_extract(*args, device=device, **kw)

    monkeypatch.setattr(ecgprobe.encoders, "create_encoder", create)
    monkeypatch.setattr(ecgprobe.extract, "extract", extract)
    monkeypatch.setattr("ecgprobe.cli.common.extract", extract, raising=False)
    for name in ("linear_probe", "knn_probe"):
        klass = ANALYZERS.get(name)
        real_run = klass.run

        def run(self, *args, _name=name, _real=real_run, **kw):
            got[_name].append(str(self.device))
            return _real(self, *args, **kw)

        monkeypatch.setattr(klass, "run", run)
    return got


def _study(tmp_path, device: str):
    config = tmp_path / "study.yaml"
    config.write_text(
        f"""
name: devices
out: {tmp_path / "out"}
cache_dir: null
profile: quick
datasets: [{{name: synthetic, options: {{n_records: 80, fs: 100.0, seed: 1}}}}]
encoders: [{{name: tiny-test, options: {{dim: 8}}}}]
extraction: {{device: {device}, batch_size: 16}}
analyses: {{linear_probe: {{}}, knn_probe: {{}}}}
reports: [model]
"""
    )
    return config


def test_a_study_gives_its_device_to_every_stage(tmp_path, seen):
    assert main(["run", str(_study(tmp_path, "cpu")), "--quiet", "--format", "html"]) == 0
    assert seen == {k: ["cpu"] for k in seen}, seen


def test_run_device_overrides_the_config_for_every_stage(tmp_path, seen):
    config = _study(tmp_path, "auto")
    assert main(["run", str(config), "--quiet", "--format", "html", "--device", "cpu"]) == 0
    assert seen == {k: ["cpu"] for k in seen}, seen


def test_report_forwards_device_to_the_analyses(tmp_path, seen):
    args = [
        "report",
        "--dataset",
        "synthetic",
        "-o",
        "n_records=80",
        "-o",
        "fs=100.0",
        "--encoder",
        "tiny-test",
    ]
    args += ["--device", "cpu", "--no-cache", "--analyses", "linear_probe,knn_probe", "--profile", "quick"]
    assert main([*args, "--out", str(tmp_path / "rep"), "--format", "html", "--quiet"]) == 0
    assert seen["linear_probe"] == ["cpu"] and seen["knn_probe"] == ["cpu"] and seen["extract"] == ["cpu"]


def test_run_settings_are_checked_once_with_the_setting_named():
    with pytest.raises(ConfigError, match="window must be one of"):
        RunSettings(window="fitt")
    with pytest.raises(ConfigError, match="hop=5 only applies to window='sliding'"):
        RunSettings(hop=5)
    with pytest.raises(ConfigError, match="ci_level must lie strictly between 0 and 1"):
        RunSettings(ci_level=1.5)
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        RunSettings.from_mapping({"batchsize": 3})
    with pytest.raises(ConfigError, match="device must be"):
        RunSettings(device="tpu")
    s = RunSettings(seed=4, n_resamples=200, device="cpu", cache_dir="~/x")
    assert s.cache_dir is not None and "~" not in str(s.cache_dir)
    assert s.for_analysis({"seed", "n_resamples", "ci_level", "device"}) == {
        "seed": 4,
        "n_resamples": 200,
        "device": "cpu",
    }
    assert s.for_analysis({"seed"}) == {"seed": 4}


def test_one_parser_per_kind_of_option():
    assert parse_layers(None) is None and parse_layers(FINAL_LAYER) is None
    assert parse_layers("all") == "all" and parse_layers("a, b") == ("a", "b")
    assert parse_layers(["a"]) == ("a",) and parse_layers(("a", "b")) == ("a", "b")
    with pytest.raises(ConfigError, match="empty"):
        parse_layers("a,,b")
    with pytest.raises(ConfigError, match="cannot be combined"):
        parse_layers("all,a")
    assert split_list("x, y,") == ["x", "y"] and split_list(None) is None
    with pytest.raises(ConfigError, match="--encoders lists \\['x'\\] more than once"):
        split_list("x,x", option="--encoders")
    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match=r"unknown device|device must be"):
        resolve_device("gpu0")
