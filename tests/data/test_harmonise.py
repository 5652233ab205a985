"""Harmonised labels (issue 15.1): the Challenge 2021 scored classes on every loader, the PTB-XL
mapping as a data file with its provenance, and round trips between the loaders."""

from __future__ import annotations

import ast
import re

import numpy as np
import pandas as pd
import pytest

import ecgprobe
from ecgprobe.data import harmonise
from ecgprobe.data.challenge import snomed_table
from ecgprobe.exceptions import ConfigError
from tests.data.challenge_format import ptbxl_dx, write_challenge

PAIRS = {"713427006": "59118001", "284470004": "63593006", "427172004": "17338001", "733534002": "164909002"}


@pytest.fixture(scope="module")
def ptbxl_scored(ptbxl_root):
    """PTB-XL mini at 100 Hz, every record kept, with its scored labels (also the zero-positive ones)."""
    return ecgprobe.load_dataset(
        "ptbxl", ptbxl_root, sampling_rate=100, labels="scored", min_count=0, drop_unlabeled=False
    )


def test_scored_classes_merge_the_four_pairs():
    scored = harmonise.scored_codes()
    assert len(scored) == 26  # 30 scored codes, four pairs scored as one (weights.csv has 26 classes)
    for first, second in PAIRS.items():
        assert first in scored and second not in scored
        assert harmonise.canonical_code(second) == first
    assert harmonise.abbreviation("713427006") == "CRBBB"
    assert "RBBB" in harmonise.describe("713427006")


def test_ptbxl_mapping_is_a_data_file_whose_rows_carry_their_source(ptbxl_root):
    from importlib import resources

    text = resources.files("ecgprobe.data").joinpath("ptbxl_snomed.csv").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "AI4HealthUOL/ecg-fm-benchmarking" in header and "Label mappings 2021.xlsx" in header
    assert re.search(r"@ [0-9a-f]{40}", header), "the header cites the commit"
    assert "physionetchallenges/evaluation-2021" in header
    table = harmonise.ptbxl_mapping()
    assert set(table["kind"]) == {"scp_statement", "heart_axis"}
    assert table["source"].str.fullmatch(r"Label mappings 2021\.xlsx, sheet PTBxl, row \d+").all()
    assert table["snomed_code"].str.fullmatch(r"\d{6,18}").all()
    assert (table["challenge_ptbxl_records"].astype(int) > 0).all()  # the Challenge used each code for PTB-XL
    statements = pd.read_csv(ptbxl_root / "scp_statements.csv", index_col=0)
    mapped = set(table.loc[table["kind"] == "scp_statement", "value"])
    assert mapped == set(statements.index)  # all 71 statements, nothing else
    axis = dict(table.loc[table["kind"] == "heart_axis", ["value", "snomed_code"]].to_numpy())
    assert axis["LAD"] == axis["ALAD"] == "39732003" and axis["RAD"] == axis["ARAD"] == "47665007"
    assert all(code in snomed_table().index for code in table["snomed_code"])  # every code has a name


def test_ptbxl_scored_labels_follow_the_mapping_and_heart_axis(ptbxl_root, ptbxl_scored):
    rs = ptbxl_scored
    assert set(rs.label_names) <= set(harmonise.scored_codes())
    db = pd.read_csv(ptbxl_root / "ptbxl_database.csv", index_col="ecg_id")
    col = {n: j for j, n in enumerate(rs.label_names)}
    lad = db.index[db["heart_axis"].isin(["LAD", "ALAD"])].astype(str)
    assert len(lad) and rs.y[np.isin(rs.ids, lad), col["39732003"]].all()
    crbbb = [str(i) for i, c in db["scp_codes"].items() if "CRBBB" in ast.literal_eval(c)]
    assert len(crbbb) and rs.y[np.isin(rs.ids, crbbb), col["713427006"]].all()
    assert rs.label_descriptions["713427006"].startswith("CRBBB")
    notes = " ".join(rs.notes)
    assert "not Challenge-scored classes" in notes and "164865005 (MI)" in notes  # MI is mapped, not scored
    snomed = ecgprobe.load_dataset(
        "ptbxl", ptbxl_root, sampling_rate=100, labels="snomed", drop_unlabeled=False
    )
    assert "164865005" in snomed.label_names and set(rs.label_names) & set(snomed.label_names)


def test_unmapped_statements_are_reported_by_info(ptbxl_copy, capsys):
    from ecgprobe.cli import main

    root = ptbxl_copy(6)
    db = pd.read_csv(root / "ptbxl_database.csv")
    db.loc[0, "scp_codes"] = "{'NORM': 100.0, 'XYZ': 0.0}"  # a statement the mapping does not know
    db.to_csv(root / "ptbxl_database.csv", index=False)
    args = [
        "info",
        "--dataset",
        "ptbxl",
        "--root",
        str(root),
        "-o",
        "sampling_rate=100",
        "-o",
        "labels=scored",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "no SNOMED-CT code in ptbxl_snomed.csv: SCP XYZ x1" in out


def test_every_dx_code_of_the_challenge_sample_maps_or_is_reported(cinc_root):
    from ecgprobe.data.wfdb_io import read_header

    scored = ecgprobe.load_dataset("challenge", cinc_root, labels="scored")
    snomed = ecgprobe.load_dataset("challenge", cinc_root, labels="snomed")
    notes = " ".join(scored.notes)
    for hea in sorted(cinc_root.glob("*.hea")):
        codes = {harmonise.canonical_code(c) for c in read_header(hea).comment("Dx").split(",")}
        for code in codes:
            assert code in snomed.label_names
            assert code in scored.label_names or f"{code} (" in notes, (hea.name, code)
        row = snomed.select_ids([hea.stem])
        assert set(np.asarray(snomed.label_names)[row.y[0] > 0]) == codes
    assert set(scored.label_names) <= set(harmonise.scored_codes())
    with pytest.raises(ConfigError, match="merge_equivalent"):
        ecgprobe.load_dataset("challenge", cinc_root, labels="scored", merge_equivalent=False)


def test_round_trip_through_the_challenge_format_keeps_the_scored_labels(ptbxl_root, ptbxl_scored, tmp_path):
    db = pd.read_csv(ptbxl_root / "ptbxl_database.csv", index_col="ecg_id")
    blocks = db.index[db["scp_codes"].str.contains("CLBBB|CRBBB")]
    pick = blocks.union(db.index[db["heart_axis"].notna()][:16])
    sub = ptbxl_scored.select_ids([str(i) for i in pick])
    dx = [ptbxl_dx(ast.literal_eval(db.at[i, "scp_codes"]), db.at[i, "heart_axis"]) for i in pick]
    assert any("164909002" in d for d in dx)  # CLBBB is written as the Challenge's LBBB code
    names = write_challenge(sub, tmp_path / "copy", dx)
    copy = ecgprobe.load_dataset("challenge", tmp_path / "copy", labels="scored", fs=100, min_count=1)
    assert list(copy.ids) == names
    for i, name in enumerate(names):
        theirs = set(np.asarray(copy.label_names)[copy.select_ids([name]).y[0] > 0])
        ours = set(np.asarray(sub.label_names)[sub.y[i] > 0])
        assert theirs == ours, name
    np.testing.assert_array_equal(copy.signals, sub.signals)  # the copy is bit-exact


def test_code15_scored_labels_are_its_six_abnormalities(tmp_path, ptbxl100):
    h5py = pytest.importorskip("h5py")
    from ecgprobe.data.preprocess import fit_length, resample

    x = resample(ptbxl100.signals[:6], 100, 400)
    padded = np.stack([fit_length(np.pad(r, ((0, 0), (48, 0))), 4096) for r in x])
    with h5py.File(tmp_path / "exams_part0.hdf5", "w") as f:
        f["tracings"] = padded.transpose(0, 2, 1).astype(np.float32)
        f["exam_id"] = np.arange(10, 16)
    flags = np.eye(6, dtype=int)  # exam k has abnormality k
    rows = [{"exam_id": 10 + k, "age": 50, "is_male": True, "patient_id": k, "trace_file": "exams_part0.hdf5",
             **dict(zip(harmonise.CODE15_SNOMED, flags[k]))} for k in range(6)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "exams.csv", index=False)
    rs = ecgprobe.load_dataset("code15", tmp_path, labels="scored")
    want = {"270492004", "713427006", "733534002", "426177001", "427084000", "164889003"}  # RBBB/LBBB merged
    assert set(rs.label_names) == want
    for k, name in enumerate(harmonise.CODE15_SNOMED):
        code = harmonise.canonical_code(harmonise.CODE15_SNOMED[name])
        assert rs.y[k, rs.label_names.index(code)] == 1 and rs.y[k].sum() == 1
    with pytest.raises(ConfigError, match="include_normal"):
        ecgprobe.load_dataset("code15", tmp_path, labels="scored", include_normal=True)
