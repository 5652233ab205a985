"""`ecgprobe probe --kind attentive` as a user runs it: token extraction through the cache
(once), the results and CSVs written, the paired comparison printed, and the refusals (an
encoder without a sequence, a folder of pooled embeddings) naming the encoders that work."""

from __future__ import annotations

import csv

from ecgprobe.analyzers import Result
from ecgprobe.cli import build_parser, main
from ecgprobe.cli.probe import ATTENTIVE_ENCODERS
from ecgprobe.encoders.testing import TinyTestEncoder

DATA = ["--dataset", "synthetic", "-o", "n_records=120", "-o", "fs=100", "-o", "seed=1"]
FAST = ["--n-resamples", "50", "--max-epochs", "3", "--max-tokens", "8", "--device", "cpu", "--quiet"]


def test_attentive_probe_writes_results_and_reuses_the_cache(tmp_path, capsys):
    cache = tmp_path / "cache"
    args = ["probe", *DATA, "--encoder", "tiny-test", "--kind", "attentive", *FAST, "--cache-dir", str(cache)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "attentive_probe: macro_auroc" in printed and "vs linear probe on the mean tokens" in printed
    res = Result.load(tmp_path / "a" / "results.json")
    assert res.kind == "attentive_probe" and res.metrics["max_tokens"] == 8 and res.metrics["epochs_run"] <= 3
    with (tmp_path / "a" / "vs_linear.csv").open() as fh:
        assert {"label", "attentive", "linear", "difference", "ci_low", "ci_high"} <= set(
            next(csv.DictReader(fh))
        )
    calls = TinyTestEncoder.calls
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert TinyTestEncoder.calls == calls  # the tokens came from the cache


def test_attentive_probe_refuses_an_encoder_without_a_sequence(tmp_path, capsys):
    args = [
        "probe",
        *DATA,
        "--encoder",
        "handcrafted",
        "--kind",
        "attentive",
        *FAST,
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "'handcrafted' exposes no token sequence" in err and "random-resnet1d" in err


def test_attentive_probe_refuses_pooled_embeddings(tmp_path, capsys):
    emb = tmp_path / "emb"
    assert main(["extract", *DATA, "--encoder", "tiny-test", "--out", str(emb), "--no-cache", "--quiet"]) == 0
    args = [
        "probe",
        *DATA,
        "--embeddings",
        str(emb),
        "--kind",
        "attentive",
        *FAST,
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) != 0
    assert "holds pooled embeddings, not token sequences" in capsys.readouterr().err


def test_help_names_the_encoders_with_a_sequence():
    probe = build_parser()._subparsers._group_actions[0].choices["probe"]
    text = "".join(probe.format_help().split())  # help wraps lines at hyphens too
    assert "attentive" in text and all(name in text for name in ATTENTIVE_ENCODERS)
