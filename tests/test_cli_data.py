"""`ecgprobe datasets` and `ecgprobe info` as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ecgprobe.cli import main


def test_datasets_lists_loaders_and_options(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("ptbxl", "challenge", "folder", "synthetic"):
        assert f"{name}:" in out
    assert "-o sampling_rate=500" in out


@pytest.mark.realdata
def test_info_on_real_ptbxl(ptbxl_root, capsys):
    assert main(["info", "--dataset", "ptbxl", "--root", str(ptbxl_root), "-o", "sampling_rate=100"]) == 0
    out = capsys.readouterr().out
    assert "records   488" in out and "train 352  val 72  test 64" in out
    assert re.search(r"NORM\s+225\s+36\s+36\s+297", out)


def test_errors_are_messages_not_tracebacks(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ecgprobe", "info", "--dataset", "ptbxl", "--root", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "error: ptbxl: dataset root" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "ecgprobe", "info", "--dataset", "synthetic", "-o", "n_record=5"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "did you mean 'n_records'" in proc.stderr


def test_info_synthetic(capsys):
    assert main(["info", "--dataset", "synthetic", "-o", "n_records=30", "-o", "fs=100"]) == 0
    assert "records   30" in capsys.readouterr().out
