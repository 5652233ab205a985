"""The PhysioNet/CinC Challenge loader on the real 2021 sample records."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

import ecgprobe
from ecgprobe.data.challenge import snomed_table
from ecgprobe.data.wfdb_io import read_record
from ecgprobe.exceptions import DataError

pytestmark = pytest.mark.realdata


def _raw_dx(root):
    out = {}
    for hea in sorted(root.glob("*.hea")):
        for line in hea.read_text().splitlines():
            if line.startswith("# Dx:"):
                out[hea.stem] = line.split(":", 1)[1].strip().split(",")
    return out


def test_counts_and_snomed_parsing(cinc_root):
    rs = ecgprobe.load_dataset("challenge", cinc_root, label_style="code", merge_equivalent=False)
    raw = _raw_dx(cinc_root)
    assert len(rs) == 50 == len(raw)
    expected = Counter(c for codes in raw.values() for c in set(codes))
    got = dict(zip(rs.label_names, rs.y.sum(axis=0).tolist()))
    assert got == dict(expected)
    for rid in ("E07500", "JS20019", "HR06009"):
        i = list(rs.ids).index(rid)
        assert {n for n, v in zip(rs.label_names, rs.y[i]) if v} == set(raw[rid])


def test_names_equivalents_and_scored(cinc_root):
    rs = ecgprobe.load_dataset("challenge", cinc_root)
    assert "STach" in rs.label_names and "PAC" in rs.label_names
    assert "RBBB" not in rs.label_names  # scored as CRBBB by the Challenge
    assert rs.label_descriptions["STach"].startswith("sinus tachycardia")
    scored = ecgprobe.load_dataset("challenge", cinc_root, scored_only=True)
    table = snomed_table()
    abbr_scored = set(table.loc[table["scored"], "abbreviation"])
    assert set(scored.label_names) <= abbr_scored
    assert "LVHV" in rs.label_names and "LVHV" not in scored.label_names


def test_metadata_signals_and_split(cinc_root):
    rs = ecgprobe.load_dataset("challenge", cinc_root)
    assert rs.fs == 500 and rs.signals.shape == (50, 12, 5000)
    assert rs.meta["age"].between(0, 120).all()
    assert set(rs.meta["sex"]) == {"male", "female"}
    assert set(rs.meta["source"]) == {"Georgia", "PTB-XL", "Chapman-Shaoxing/Ningbo"}
    assert sum(rs.split_sizes().values()) == 50 and rs.split_sizes()["train"] >= 35
    x, _ = read_record(cinc_root / "E07500.hea")
    np.testing.assert_allclose(rs.signals[list(rs.ids).index("E07500")], x)
    again = ecgprobe.load_dataset("challenge", cinc_root)
    assert list(again.split) == list(rs.split)  # seeded
    other = ecgprobe.load_dataset("challenge", cinc_root, seed=1)
    assert list(other.split) != list(rs.split)


def test_min_count_and_length_policy(cinc_root, tmp_path):
    rs = ecgprobe.load_dataset("challenge", cinc_root, min_count=5)
    assert (rs.y.sum(axis=0) >= 5).all()
    assert any("positives left out" in n for n in rs.notes)
    short = ecgprobe.load_dataset("challenge", cinc_root, length_s=4.0)
    assert short.n_samples == 2000 and any("cropped 50" in n for n in short.notes)
    low = ecgprobe.load_dataset("challenge", cinc_root, fs=250)
    assert low.n_samples == 2500 and any("resampled 50" in n for n in low.notes)


def test_mixed_rates_and_missing_leads(cinc_root, tmp_path):
    for f in list(cinc_root.glob("E0750[01].*")):
        shutil.copy(f, tmp_path / f.name)
    hea = tmp_path / "E07501.hea"
    hea.write_text(hea.read_text().replace("E07501 12 500 5000", "E07501 12 250 5000", 1))
    with pytest.raises(DataError, match=r"different sampling rates.*pass fs=500"):
        ecgprobe.load_dataset("challenge", tmp_path)
    with pytest.raises(DataError, match=r"lack some of the leads"):
        ecgprobe.load_dataset("challenge", tmp_path, leads=("I", "II", "V7"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \*\.hea files"):
        ecgprobe.load_dataset("challenge", tmp_path / "empty")


def test_corrupt_mat(cinc_root, tmp_path):
    for f in cinc_root.glob("E0750[01].*"):
        shutil.copy(f, tmp_path / f.name)
    mat = tmp_path / "E07500.mat"
    mat.write_bytes(mat.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"E07500.mat is truncated"):
        ecgprobe.load_dataset("challenge", tmp_path)


def _suggested(message: str) -> dict[str, str]:
    """The ``pass NAME=VALUE`` suggestions of an error message, as CLI ``-o`` text."""
    import re

    return dict(re.findall(r"pass (\w+)=([^\s;()]+)", message))


def _copy(cinc_root, dst, pattern="E0750[012].*"):
    dst.mkdir(exist_ok=True)
    for f in cinc_root.glob(pattern):
        shutil.copy(f, dst / f.name)
    return dst


def _shorten(hea, n_samples: int) -> None:
    """Rewrite a Challenge record (format-16 .mat behind a 24-byte header) with fewer samples."""
    mat = hea.with_suffix(".mat")
    raw = mat.read_bytes()
    lines = hea.read_text().splitlines()
    n_leads, total = int(lines[0].split()[1]), int(lines[0].split()[3])
    data = np.frombuffer(raw[24:], dtype="<i2").reshape(total, n_leads)[:n_samples]
    header = bytearray(raw[:24])
    header[8:12] = np.int32(n_samples).tobytes()  # MATLAB v4 header: type, mrows, ncols, imagf, namlen
    mat.write_bytes(bytes(header) + data.tobytes())
    sums = data.sum(axis=0, dtype=np.int64)
    lines[0] = " ".join([*lines[0].split()[:3], str(n_samples)])
    for i in range(n_leads):
        parts = lines[1 + i].split()
        parts[5], parts[6] = str(int(data[0, i])), str(int(((sums[i] + 32768) % 65536) - 32768))
        lines[1 + i] = " ".join(parts)
    hea.write_text("\n".join(lines) + "\n")


def test_every_suggested_option_exists_and_fixes_the_load(cinc_root, tmp_path):
    """Regression (issue 13.8): a message's "pass NAME=VALUE" names an option of this loader,
    and loading again with exactly that option (as CLI text) succeeds."""
    from ecgprobe.cli.common import parse_options
    from ecgprobe.data import dataset_options

    names = {o.name for o in dataset_options("challenge")}
    mixed = _copy(cinc_root, tmp_path / "mixed")
    hea = mixed / "E07501.hea"
    hea.write_text(hea.read_text().replace("E07501 12 500 5000", "E07501 12 250 5000", 1))
    short = _copy(cinc_root, tmp_path / "short")
    _shorten(short / "E07502.hea", 4000)
    assert ecgprobe.load_dataset("challenge", short).n_samples == 5000  # the shortened file is valid
    cases = [
        (mixed, {}),  # two sampling rates -> fs=
        (short, {"length_s": None}),  # two lengths -> length_s=
        (short, {"leads": ("I", "II", "V7")}),  # a lead no record has -> leads=
    ]
    for root, options in cases:
        with pytest.raises(DataError) as info:
            ecgprobe.load_dataset("challenge", root, **options)
        suggestion = _suggested(str(info.value))
        assert suggestion, str(info.value)
        assert set(suggestion) <= names, str(info.value)
        fixed = {**options, **parse_options([f"{k}={v}" for k, v in suggestion.items()], "challenge")}
        assert len(ecgprobe.load_dataset("challenge", root, **fixed)) == 3


@pytest.mark.parametrize("value", ["abc", "<script>", "4267830O6"])
def test_dx_values_that_are_not_snomed_codes_are_refused_naming_the_record(cinc_root, tmp_path, value):
    """Regression (issue 13.10): non-SNOMED '# Dx:' values are not turned into labels."""
    _copy(cinc_root, tmp_path)
    hea = tmp_path / "E07501.hea"
    text = hea.read_text()
    hea.write_text(text.replace("# Dx: ", f"# Dx: {value},", 1))
    with pytest.raises(
        DataError, match=r"not SNOMED-CT codes.*E07501\.hea.*correct those header lines"
    ) as info:
        ecgprobe.load_dataset("challenge", tmp_path)
    assert value in str(info.value)
    hea.write_text(text)
    rs = ecgprobe.load_dataset("challenge", tmp_path, label_style="code")
    assert all(name.isdigit() for name in rs.label_names)
