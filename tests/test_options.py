"""The one typed option check (issue 13.7): the command line, study configs and the Python API
all check values against the annotations and declared ranges of the parameters they fill."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest

import ecgprobe
from ecgprobe.exceptions import ConfigError
from ecgprobe.options import Range, check_params, describe_type, param_types


def _target(
    *,
    flag: bool = True,
    count: int = 1,
    ratio: float = 0.5,
    mode: Literal["a", "b"] = "a",
    rate: Literal[100, 500] = 500,
    lazy: bool | Literal["auto"] = "auto",
    cap: int | None = None,
    name: str | None = None,
    folds: Annotated[tuple[int, ...], Range(ge=1, le=10)] = (9,),
    band: tuple[float | None, float | None] | None = None,
    share: Annotated[float, Range(gt=0, lt=1)] = 0.5,
    weights: dict[str, float] | None = None,
) -> None:
    """A callable with one parameter of each kind of annotation the registered objects use."""


def _text(**values: str) -> dict:
    return check_params(_target, values, where="test", from_string=True)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("Yes", True), ("1", True), ("false", False), ("NO", False), ("0", False)],
)
def test_booleans_accept_exactly_true_false_yes_no_1_0(raw, value):
    assert _text(flag=raw) == {"flag": value}


@pytest.mark.parametrize("raw", ["maybe", "t", "2", "", "on"])
def test_other_boolean_text_is_refused_with_the_allowed_values(raw):
    with pytest.raises(
        ConfigError, match=r"test: flag=.* is not valid; expected true or false \(also yes/no, 1/0\)"
    ):
        _text(flag=raw)


def test_integers_and_numbers_are_parsed_strictly():
    assert _text(count="12", ratio="1e-3") == {"count": 12, "ratio": 0.001}
    for bad in ("nine", "9.5", "1e3", "9 apples"):
        with pytest.raises(ConfigError, match="expected an integer"):
            _text(count=bad)
    for bad in ("high", "nan", "inf"):
        with pytest.raises(ConfigError, match="expected a number"):
            _text(ratio=bad)
    with pytest.raises(ConfigError, match="expected an integer"):
        check_params(_target, {"count": True}, where="test")  # a bool is not a count
    with pytest.raises(ConfigError, match="expected an integer"):
        check_params(_target, {"count": 2.0}, where="test")
    assert check_params(_target, {"ratio": 2}, where="test") == {"ratio": 2.0}


def test_literals_list_their_values():
    assert _text(mode="b", rate="100") == {"mode": "b", "rate": 100}
    with pytest.raises(ConfigError, match=r"mode='c' is not valid; expected one of a, b \(default: mode=a\)"):
        _text(mode="c")
    with pytest.raises(ConfigError, match="expected one of 100, 500"):
        check_params(_target, {"rate": "500"}, where="test")  # Python callers pass the number
    assert _text(lazy="auto") == {"lazy": "auto"} and _text(lazy="no") == {"lazy": False}
    with pytest.raises(ConfigError, match=r"expected true or false .* or one of auto"):
        _text(lazy="sometimes")


def test_optional_values_and_lists():
    assert _text(cap="none", name="none") == {"cap": None, "name": None}
    assert _text(cap="5", name="x") == {"cap": 5, "name": "x"}
    assert _text(folds="8,9") == {"folds": (8, 9)}
    assert _text(folds="[8, 9]") == {"folds": (8, 9)}
    assert _text(folds="9") == {"folds": (9,)}
    assert check_params(_target, {"folds": 9}, where="t") == {"folds": (9,)}
    assert check_params(_target, {"folds": [8, 9]}, where="t") == {"folds": (8, 9)}
    assert _text(band="0.5,none") == {"band": (0.5, None)}
    with pytest.raises(ConfigError, match=r"band='0.5' is not valid; expected a list of 2 values"):
        _text(band="0.5")
    assert _text(weights='{"AF": 0.2}') == {"weights": {"AF": 0.2}}
    with pytest.raises(ConfigError, match="a mapping"):
        _text(weights="AF")


def test_declared_ranges():
    with pytest.raises(
        ConfigError, match=r"folds='0,9' is not valid; .*each value an integer between 1 and 10"
    ):
        _text(folds="0,9")
    with pytest.raises(ConfigError, match=r"expected a number > 0 and < 1"):
        _text(share="1")
    assert describe_type(param_types(_target)["share"][0]) == "a number > 0 and < 1"


def test_names_the_function_does_not_take_are_left_to_the_registry():
    assert _text(unknown="x") == {"unknown": "x"}


def _registered():
    from ecgprobe.analyzers import ANALYZERS
    from ecgprobe.data import DATASETS
    from ecgprobe.encoders import ENCODERS

    return [
        pytest.param(reg, entry, id=f"{reg.kind}:{entry.name}")
        for reg in (DATASETS, ENCODERS, ANALYZERS)
        for entry in reg
    ]


@pytest.mark.parametrize(("registry", "entry"), _registered())
def test_every_registered_default_satisfies_its_own_annotation(registry, entry):
    """Conformance: every loader/encoder/analyzer annotation is one the checker understands,
    and each default passes it (a default that fails would make the option unusable)."""
    defaults = {k: d for k, (_, d) in param_types(entry.obj).items() if d is not inspect.Parameter.empty}
    assert check_params(entry.obj, defaults, where=entry.name).keys() == defaults.keys()
    for annotation, _ in param_types(entry.obj).values():
        assert describe_type(annotation)


def test_registry_check_options_converts_and_refuses():
    assert ecgprobe.load_dataset("synthetic", n_records=12, fs=100.0, seed=1).n_samples == 1000
    with pytest.raises(ConfigError, match=r"dataset 'synthetic': fs='fast' is not valid; expected a number"):
        ecgprobe.load_dataset("synthetic", fs="fast")
    with pytest.raises(
        ConfigError, match=r"encoder 'random-resnet1d': width=8.5 is not valid; expected an integer"
    ):
        ecgprobe.create_encoder("random-resnet1d", width=8.5, device="cpu")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["info", "--dataset", "synthetic", "-o", "n_records=many"],
            "n_records='many' is not valid; expected an integer",
        ),
        (["info", "--dataset", "synthetic", "-o", "fs"], "is not KEY=VALUE"),
        (
            [
                "extract",
                "--dataset",
                "synthetic",
                "-o",
                "n_records=8",
                "--encoder",
                "random-resnet1d",
                "-E",
                "seed=x",
                "--out",
                "OUT",
            ],
            "encoder 'random-resnet1d': seed='x' is not valid; expected an integer",
        ),
    ],
)
def test_the_command_line_reports_bad_values_as_errors_not_bugs(tmp_path, args, message):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "ecgprobe", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr and "bug" not in proc.stderr


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        "name: t\nout: out\ndatasets:\n  - name: synthetic\n    options: {n_records: 20}\n"
        "encoders:\n  - name: random-resnet1d\n" + body
    )
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("seed: zero\n", r"study\.yaml: seed='zero' is not valid; expected an integer"),
        (
            "datasets:\n  - name: synthetic\n    options: {fs: abc}\n",
            r"study\.yaml: datasets\[0\]: dataset 'synthetic': fs='abc' is not valid; expected a number",
        ),
        (
            "encoders:\n  - name: random-resnet1d\n    options: {seed: one}\n",
            r"encoders\[0\]: encoder 'random-resnet1d': seed='one' is not valid",
        ),
        (
            "encoders:\n  - name: random-resnet1d\n    options: [seed=one]\n",
            r"encoders\[0\]: encoder 'random-resnet1d': seed='one' is not valid",
        ),
        (
            "extraction: {batch_size: many}\n",
            r"study\.yaml: extraction: batch_size='many' is not valid; expected an integer",
        ),
        ("extraction: {window: slide}\n", r"expected one of official, fit, sliding"),
        (
            "analyses: {linear_probe: {n_resamples: lots}}\n",
            r"analyses\.linear_probe: analyzer 'linear_probe': n_resamples='lots' is not valid",
        ),
    ],
)
def test_study_config_values_are_checked_before_any_work(tmp_path, body, message):
    from ecgprobe.workflows import load_study

    text = _config(tmp_path, "").read_text()
    key = body.split(":", 1)[0]
    if key in ("datasets", "encoders"):  # replace the section rather than repeat the key
        head, _, rest = text.partition(f"{key}:\n")
        rest = rest.split("\n", 2 if key == "datasets" else 1)[-1]
        text = head + body + rest
    else:
        text += body
    (tmp_path / "study.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_study(tmp_path / "study.yaml")


def test_valid_study_values_are_converted(tmp_path):
    from ecgprobe.workflows import load_study

    path = _config(tmp_path, "seed: 3\nextraction: {batch_size: 8, window: fit}\n")
    study = load_study(path)
    assert study.settings.seed == 3
    assert (study.settings.batch_size, study.settings.window) == (8, "fit")
    assert study.datasets[0]["options"] == {"n_records": 20}
