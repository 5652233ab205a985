"""What the command line says besides results: Python warnings as one line each (no source paths),
install hints that name extras which exist, dependency errors that do not repeat themselves, and a
pickle refusal that says what converting the file risks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomllib

from ecgprobe.cli import main
from ecgprobe.exceptions import CheckpointError, DependencyError

ROOT = Path(__file__).resolve().parents[1]
DATA = ["--dataset", "synthetic", "-o", "n_records=40", "-o", "fs=100"]


def _is_clean_warning(line: str, command: str) -> bool:
    return line.startswith(f"ecgprobe {command}: warning: ") and ".py:" not in line and "Warning:" not in line


def test_corrupt_cache_shard_warning_is_one_line_without_source_path(tmp_path, capsys):
    cache = tmp_path / "cache"
    args = ["extract", *DATA, "--encoder", "tiny-test", "--cache-dir", str(cache), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    shard = next(cache.rglob("shard-00000.npy"))
    shard.write_bytes(shard.read_bytes()[:-8] + b"garbage!")
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(lines) == 1 and _is_clean_warning(lines[0], "extract"), err
    assert "corrupt" in lines[0] and "recomputing" in lines[0]
    assert "warnings.warn(" not in err and "stacklevel" not in err


def test_nan_samples_set_to_zero_warn_in_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ids = [f"rec{i:02d}" for i in range(30)]
    for i, rid in enumerate(ids):
        x = rng.normal(size=(12, 1000)).astype(np.float32)
        if i < 2:
            x[0, 10] = np.nan
        np.save(tmp_path / f"{rid}.npy", x)
    labels = {"id": ids, "af": np.arange(30) % 3 == 0, "patient": [f"p{i}" for i in range(30)]}
    pd.DataFrame(labels).astype({"af": int}).to_csv(tmp_path / "labels.csv", index=False)
    args = ["info", "--dataset", "folder", "--root", str(tmp_path), "-o", "fs=100", "-o", "nonfinite=zero",
            "-o", "patient_column=patient"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "NaN" in ln]
    assert len(lines) == 1 and _is_clean_warning(lines[0], "info") and "2 record(s)" in lines[0], err


def test_library_warnings_are_one_line_and_name_the_library(capsys, monkeypatch):
    import warnings

    from ecgprobe.cli import data

    def warn_like_a_library(args):
        warnings.warn_explicit(
            "something\n  spread over lines", UserWarning, "/x/site-packages/somelib/mod.py", 3
        )
        warnings.warn_explicit(
            "something\n  spread over lines", UserWarning, "/x/site-packages/somelib/mod.py", 9
        )
        return 0

    monkeypatch.setattr(data, "cmd_datasets", warn_like_a_library)
    assert main(["datasets"]) == 0
    err = capsys.readouterr().err
    assert err == "ecgprobe datasets: warning: something spread over lines (from somelib)\n"  # once


def test_install_hints_name_extras_that_exist():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = {
        (m.group(1), str(p.relative_to(ROOT)))
        for p in (ROOT / "ecgprobe").rglob("*.py")
        for m in re.finditer(r"ecgprobe\[([\w,-]+)\]", p.read_text())
    }
    assert named, "no install hint found; the pattern no longer matches the source"
    unknown = {(extra, where) for extra, where in named if not set(extra.split(",")) <= extras}
    assert not unknown, f"install hints naming extras pyproject.toml does not define: {sorted(unknown)}"


def test_openecg_missing_says_so_once(monkeypatch, tmp_path, capsys):
    from ecgprobe.encoders import openecg_codec

    monkeypatch.setitem(sys.modules, "openecg", None)
    with pytest.raises(DependencyError) as info:
        openecg_codec._import_openecg()
    text = str(info.value)
    assert text.count("openecg package") == 1 and text.count("pip install") == 1 and text.count("Python") <= 1
    rc = main(["extract", *DATA, "--encoder", "openecg-codec", "--out", str(tmp_path / "o"), "--no-cache"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and 'pip install "ecgprobe[openecg]"' in err, err
    assert not (tmp_path / "o").exists()


def test_captum_hint_names_a_real_install(monkeypatch):
    from ecgprobe.analyzers._stats import attribution_methods

    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(DependencyError, match=r"pip install 'captum>=0\.7'") as info:
        attribution_methods._captum()
    assert "[attribution]" not in str(info.value)


class _NotATensor:  # pickled by reference: loading it needs this class, i.e. running code
    pass


def test_pickle_refusal_says_what_weights_only_false_risks(tmp_path):
    import torch

    from ecgprobe.encoders.checkpoint import load_checkpoint

    path = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _NotATensor()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "was refused" in text
    if "weights_only=False" in text:  # advising it is fine only together with what it risks
        assert "runs any code the file contains" in text and "trust" in text


def test_an_os_error_from_any_command_is_one_line_exit_1(capsys, monkeypatch):
    from ecgprobe.cli import data

    def unreadable(args):
        raise PermissionError(13, "Permission denied", "/data/ptb-xl/ptbxl_database.csv")

    monkeypatch.setattr(data, "cmd_datasets", unreadable)
    assert main(["datasets"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "ecgprobe datasets: error: /data/ptb-xl/ptbxl_database.csv: permission denied; "
        "check its permissions (and those of the folders above it)\n"
    )
