"""PTB-XL loader on the real mini dataset: counts from an independent computation, splits, signals."""

from __future__ import annotations

import ast
import csv
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import ecgprobe
from ecgprobe.exceptions import ConfigError, DataError

pytestmark = pytest.mark.realdata


def _independent_superclass_counts(root: Path) -> tuple[Counter, int]:
    """Superclass positives computed with the csv module only (no ecgprobe code)."""
    with open(root / "scp_statements.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    to_class = {
        r[""]: r["diagnostic_class"] for r in rows if r["diagnostic"] == "1.0" and r["diagnostic_class"]
    }
    counts: Counter = Counter()
    unlabeled = 0
    with open(root / "ptbxl_database.csv", newline="") as f:
        for rec in csv.DictReader(f):
            classes = {to_class[c] for c in ast.literal_eval(rec["scp_codes"]) if c in to_class}
            counts.update(classes)
            unlabeled += not classes
    return counts, unlabeled


def test_superclass_counts_match_independent_computation(ptbxl_root):
    rs = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100, drop_unlabeled=False)
    expected, _ = _independent_superclass_counts(ptbxl_root)
    got = dict(zip(rs.label_names, rs.y.sum(axis=0).tolist()))
    assert got == dict(expected)
    # the figures the shared data's README states
    assert got == {"NORM": 297, "STTC": 96, "CD": 78, "MI": 73, "HYP": 40}
    assert len(rs) == 500


def test_drop_unlabeled_is_reported(ptbxl_root):
    _, unlabeled = _independent_superclass_counts(ptbxl_root)
    rs = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100)
    assert len(rs) == 500 - unlabeled
    assert any(f"dropped {unlabeled} records" in n for n in rs.notes)
    assert (rs.y.sum(axis=1) > 0).all()


def test_split_sizes_follow_strat_fold_and_are_patient_wise(ptbxl100, ptbxl_root):
    with open(ptbxl_root / "ptbxl_database.csv", newline="") as f:
        folds = {r["ecg_id"]: int(r["strat_fold"]) for r in csv.DictReader(f)}
    want = {"train": 0, "val": 0, "test": 0}
    for rid in ptbxl100.ids:
        fold = folds[rid]
        want["test" if fold == 10 else "val" if fold == 9 else "train"] += 1
    assert ptbxl100.split_sizes() == want
    by_patient: dict[str, set[str]] = {}
    for pid, s in zip(ptbxl100.patient_ids, ptbxl100.split):
        by_patient.setdefault(pid, set()).add(s)
    assert all(len(v) == 1 for v in by_patient.values())


@pytest.mark.parametrize(
    ("labels", "n_vocab"), [("all", 71), ("diagnostic", 44), ("subclass", 23), ("form", 19), ("rhythm", 12)]
)
def test_label_sets(ptbxl_root, labels, n_vocab):
    rs = ecgprobe.load_dataset(
        "ptbxl", ptbxl_root, sampling_rate=100, labels=labels, min_count=0, drop_unlabeled=False
    )
    assert len(rs.label_names) == n_vocab
    assert rs.y.dtype == np.uint8 and set(np.unique(rs.y)) <= {0, 1}


def test_all_labels_match_raw_codes(ptbxl_root):
    rs = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100, labels="all", drop_unlabeled=False)
    with open(ptbxl_root / "ptbxl_database.csv", newline="") as f:
        raw = {r["ecg_id"]: set(ast.literal_eval(r["scp_codes"])) for r in csv.DictReader(f)}
    for i in (0, 17, 123, 499):
        assert {n for n, v in zip(rs.label_names, rs.y[i]) if v} == raw[rs.ids[i]]


def test_signals_physiological_and_metadata(ptbxl100):
    x = ptbxl100.signals
    assert x.shape == (len(ptbxl100), 12, 1000) and x.dtype == np.float32
    assert ptbxl100.leads == ecgprobe.data.LEADS_12
    assert np.isfinite(x).all()
    amp = np.percentile(np.abs(x), 99.9)
    assert 0.5 < amp < 10.0  # millivolts, not microvolts or ADC units
    lead2_range = np.ptp(x[:, 1], axis=1)
    assert 0.3 < np.median(lead2_range) < 5.0
    assert {"age", "sex"} <= set(ptbxl100.meta.columns)
    assert set(ptbxl100.meta["sex"].dropna()) == {"male", "female"}
    age = ptbxl100.meta["age"].dropna()
    assert len(age) > 0.95 * len(ptbxl100) and age.between(0, 120).all()


def test_100_and_500_hz_agree(ptbxl_root):
    lo = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=100).subset(range(20))
    hi = ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=500).subset(range(20))
    assert list(lo.ids) == list(hi.ids)
    from ecgprobe.data.preprocess import resample

    down = resample(hi.signals, 500, 100)
    r = [np.corrcoef(down[i].ravel(), lo.signals[i].ravel())[0, 1] for i in range(20)]
    # the official 100 Hz files were made from the 500 Hz ones by a different filter
    assert np.median(r) > 0.98 and min(r) > 0.9
    np.testing.assert_allclose(down.std(axis=(1, 2)), lo.signals.std(axis=(1, 2)), rtol=0.1)


def test_loading_never_modifies_the_source(ptbxl_copy):
    root = ptbxl_copy(8)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    assert ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=True).signals.size
    ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=False)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    assert before == after


def test_lazy_equals_eager(ptbxl_copy):
    root = ptbxl_copy(8)
    lazy = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=True)
    eager = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=False)
    assert not lazy.source.in_memory and eager.source.in_memory
    np.testing.assert_array_equal(lazy.signals, eager.signals)
    np.testing.assert_array_equal(lazy.by_split("train").signals, eager.by_split("train").signals)


# ------------------------------------------------------------------ bad input
def test_missing_root_and_metadata(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ecgprobe.load_dataset("ptbxl", tmp_path / "nope")
    with pytest.raises(DataError, match=r"ptbxl_database\.csv not found"):
        ecgprobe.load_dataset("ptbxl", tmp_path)


def test_listed_record_absent(ptbxl_copy):
    root = ptbxl_copy(6)
    victim = next(root.rglob("*.dat"))
    victim.unlink()
    with pytest.raises(DataError, match=r"missing.*re-download"):
        ecgprobe.load_dataset("ptbxl", root, sampling_rate=100)


def test_truncated_dat(ptbxl_copy):
    root = ptbxl_copy(6)
    victim = sorted(root.rglob("*.dat"))[2]
    victim.write_bytes(victim.read_bytes()[:5000])
    with pytest.raises(DataError, match=rf"{victim.name}.*truncated"):
        ecgprobe.load_dataset("ptbxl", root, sampling_rate=100)


def test_corrupt_dat_fails_checksum(ptbxl_copy):
    root = ptbxl_copy(6)
    victim = sorted(root.rglob("*.dat"))[1]
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0x5A
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"{victim.name}.*checksum.*corrupt"):
        ecgprobe.load_dataset("ptbxl", root, sampling_rate=100)


def test_header_and_data_disagree(ptbxl_copy):
    root = ptbxl_copy(6)
    hea = sorted(root.rglob("*.hea"))[0]
    lines = hea.read_text().splitlines()
    lines[0] = lines[0].replace(" 1000", " 900")
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="longer than its header says"):
        ecgprobe.load_dataset("ptbxl", root, sampling_rate=100)


def test_sampling_rate_other_than_requested(ptbxl_copy):
    root = ptbxl_copy(6)
    hea = sorted(root.rglob("*.hea"))[0]
    lines = hea.read_text().splitlines()
    lines[0] = lines[0].replace(" 100 ", " 250 ")
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"sampled at 250 Hz but 100 Hz was requested") as info:
        ecgprobe.load_dataset("ptbxl", root, sampling_rate=100)
    _assert_suggestions_are_ptbxl_options(str(info.value))
    assert "restore it from the PTB-XL download" in str(info.value)


def _assert_suggestions_are_ptbxl_options(message: str) -> None:
    """Regression (issue 13.8): every "pass NAME=..." in a message is an option of ptbxl."""
    import re

    from ecgprobe.data import dataset_options

    names = {o.name for o in dataset_options("ptbxl")}
    suggested = re.findall(r"(\w+)=", message.split(";", 1)[-1])
    assert set(suggested) <= names, message
    assert "resample" not in message and "fs=" not in message and "leads=" not in message, message


def test_record_with_fewer_leads_says_what_to_do(ptbxl_copy):
    """An 8-lead file inside PTB-XL: no ptbxl option can load it, so the fix is the official file."""
    root = ptbxl_copy(6)
    hea = sorted(root.rglob("*.hea"))[1]
    dat = hea.with_suffix(".dat")
    raw = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
    keep = [0, 1, 6, 7, 8, 9, 10, 11]  # I, II, V1-V6: what 8-lead devices store
    raw[:, keep].tofile(dat)
    lines = hea.read_text().splitlines()
    head = lines[0].split()
    head[1] = "8"
    hea.write_text("\n".join([" ".join(head), *(lines[1 + i] for i in keep), *lines[13:]]) + "\n")
    with pytest.raises(DataError, match=r"lacks leads \['III', 'aVR', 'aVL', 'aVF'\]") as info:
        ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, drop_unlabeled=False)
    _assert_suggestions_are_ptbxl_options(str(info.value))
    assert str(hea.with_suffix("")) in str(info.value) and "12 standard leads" in str(info.value)


def _poison_with_nan(hea: Path) -> None:
    """Write WFDB's invalid-sample marker into a record and fix its checksums."""
    import re

    dat = hea.with_suffix(".dat")
    raw = np.fromfile(dat, dtype="<i2").reshape(-1, 12)
    raw[100:110, 3] = -32768
    raw.tofile(dat)
    sums = raw.sum(axis=0, dtype=np.int64) & 0xFFFF
    lines = hea.read_text().splitlines()
    for i in range(12):
        parts = lines[1 + i].split()
        parts[6] = str(int(sums[i]))
        lines[1 + i] = " ".join(parts)
    hea.write_text("\n".join(lines) + "\n")
    assert re.search(r"\d", hea.read_text())


def test_nonfinite_policies(ptbxl_copy):
    root = ptbxl_copy(6)
    hea = sorted(root.rglob("*.hea"))[2]
    _poison_with_nan(hea)
    rid = str(int(hea.stem.split("_")[0]))
    with pytest.raises(DataError, match=rf"NaN/inf.*{rid}.*nonfinite='drop'"):
        ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, drop_unlabeled=False)
    with pytest.warns(UserWarning, match="dropped 1 record"):
        rs = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, nonfinite="drop", drop_unlabeled=False)
    assert rid not in rs.ids and len(rs) == 5 and len(rs.meta) == 5
    with pytest.warns(UserWarning, match="set NaN/inf samples to 0"):
        rs = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, nonfinite="zero", drop_unlabeled=False)
    assert np.isfinite(rs.signals).all() and rid in rs.ids
    lazy = ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=True, drop_unlabeled=False)
    with pytest.raises(DataError, match="NaN/inf"):
        lazy.signals  # noqa: B018
    with pytest.raises(ConfigError, match="lazy=False"):
        ecgprobe.load_dataset("ptbxl", root, sampling_rate=100, lazy=True, nonfinite="drop")


def test_invalid_options(ptbxl_root):
    with pytest.raises(ConfigError, match="did you mean 'superclass'"):
        ecgprobe.load_dataset("ptbxl", ptbxl_root, labels="superclas")
    with pytest.raises(ConfigError, match="sampling_rate"):
        ecgprobe.load_dataset("ptbxl", ptbxl_root, sampling_rate=250)
    with pytest.raises(ConfigError, match="overlap"):
        ecgprobe.load_dataset("ptbxl", ptbxl_root, val_folds=(9, 10))


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("sampling_rate=abc", "one of 100, 500"),
        ("min_likelihood=high", "a number"),
        ("min_likelihood=150", "a number between 0 and 100"),
        ("val_folds=nine", "a comma-separated list, each value an integer between 1 and 10"),
        ("val_folds=11", ".*between 1 and 10"),
        ("drop_unlabeled=maybe", "true or false"),
        ("lazy=sometimes", "true or false .* or one of auto"),
        ("nonfinite=ignore", "one of error, drop, zero"),
    ],
)
def test_typed_options_from_the_command_line_are_refused_with_what_is_allowed(ptbxl_root, option, expected):
    """Regression (issue 13.7): -o values are checked against the loader's annotations."""
    from ecgprobe.cli.common import parse_options

    name = option.split("=")[0]
    with pytest.raises(ConfigError, match=rf"dataset 'ptbxl': {name}=.* is not valid; expected {expected}"):
        ecgprobe.load_dataset("ptbxl", ptbxl_root, **parse_options([option], "ptbxl"))


def test_typed_options_are_parsed(ptbxl_root):
    from ecgprobe.cli.common import parse_options

    opts = parse_options(["sampling_rate=100", "val_folds=8,9", "drop_unlabeled=no", "lazy=auto"], "ptbxl")
    assert opts == {"sampling_rate": 100, "val_folds": (8, 9), "drop_unlabeled": False, "lazy": "auto"}
    rs = ecgprobe.load_dataset("ptbxl", ptbxl_root, **opts)
    assert (rs.split == "val").sum() > 0 and not rs.params["drop_unlabeled"]
    with pytest.raises(ConfigError, match="val_folds="):
        ecgprobe.load_dataset("ptbxl", ptbxl_root, val_folds=("nine",))  # the Python API is checked too
