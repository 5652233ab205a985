"""The folder loader: users' own WFDB or NumPy records with a labels CSV."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import ecgprobe
from ecgprobe.exceptions import ConfigError, DataError


@pytest.fixture
def npy_folder(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"rec{i:03d}" for i in range(30)]
    for rid in ids:
        np.save(tmp_path / f"{rid}.npy", rng.normal(size=(12, 1000)).astype(np.float32) * 1000)  # in uV
    pd.DataFrame(
        {
            "id": ids,
            "af": (np.arange(30) % 3 == 0).astype(int),
            "lvh": (np.arange(30) % 4 == 0).astype(int),
            "patient": [f"p{i // 2}" for i in range(30)],
            "age": np.arange(30) + 40,
        }
    ).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path


def test_npy_folder_with_labels(npy_folder):
    rs = ecgprobe.load_dataset("folder", npy_folder, fs=100, units="uV", patient_column="patient")
    assert len(rs) == 30 and rs.label_names == ("af", "lvh")
    assert rs.signals.shape == (30, 12, 1000)
    raw = np.load(npy_folder / "rec007.npy")
    np.testing.assert_allclose(rs.signals[7], raw / 1000, rtol=1e-6)
    assert rs.y[:, 0].sum() == 10 and rs.meta["age"].iloc[0] == 40
    by_patient: dict[str, set[str]] = {}
    for pid, s in zip(rs.patient_ids, rs.split):
        by_patient.setdefault(pid, set()).add(s)
    assert all(len(v) == 1 for v in by_patient.values())


def test_regression_and_split_column(npy_folder):
    df = pd.read_csv(npy_folder / "labels.csv")
    df["split"] = ["train"] * 20 + ["valid"] * 5 + ["test"] * 5
    df.to_csv(npy_folder / "labels.csv", index=False)
    rs = ecgprobe.load_dataset(
        "folder", npy_folder, fs=100, task="regression", label_columns=("age",), split_column="split"
    )
    assert rs.task == "regression" and rs.y.dtype == np.float32
    assert rs.split_sizes() == {"train": 20, "val": 5, "test": 5}


def test_wfdb_folder(ptbxl_root, tmp_path):
    recs = sorted((ptbxl_root / "records100" / "00000").glob("0000[1-6]_lr.*"))
    for f in recs:
        shutil.copy(f, tmp_path / f.name)
    pd.DataFrame({"id": [f"0000{i}_lr" for i in range(1, 7)], "x": [0, 1] * 3}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    rs = ecgprobe.load_dataset("folder", tmp_path)
    assert rs.fs == 100 and rs.leads[3] == "aVR" and len(rs) == 6


def test_bad_inputs(npy_folder):
    with pytest.raises(ConfigError, match="fs="):
        ecgprobe.load_dataset("folder", npy_folder, patient_column="patient")
    df = pd.read_csv(npy_folder / "labels.csv")
    df.assign(id=[f"other{i}" for i in range(30)]).to_csv(npy_folder / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"none of its 30 ids matches a record"):
        ecgprobe.load_dataset("folder", npy_folder, fs=100, labels_csv=str(npy_folder / "bad.csv"))
    df.iloc[:25].to_csv(npy_folder / "part.csv", index=False)
    with pytest.raises(DataError, match=r"5 record\(s\) have no row.*unlabeled='drop'"):
        ecgprobe.load_dataset(
            "folder", npy_folder, fs=100, labels_csv=str(npy_folder / "part.csv"), patient_column="patient"
        )
    rs = ecgprobe.load_dataset(
        "folder",
        npy_folder,
        fs=100,
        labels_csv=str(npy_folder / "part.csv"),
        unlabeled="drop",
        patient_column="patient",
    )
    assert len(rs) == 25 and any("dropped 5" in n for n in rs.notes)
    pd.concat([df, df.iloc[:1]]).to_csv(npy_folder / "dup.csv", index=False)
    with pytest.raises(DataError, match="duplicate ids"):
        ecgprobe.load_dataset(
            "folder", npy_folder, fs=100, labels_csv=str(npy_folder / "dup.csv"), patient_column="patient"
        )
    with pytest.raises(DataError, match=r"columns \['patient'\] hold values other than 0/1"):
        ecgprobe.load_dataset("folder", npy_folder, fs=100)
    (npy_folder / "sub").mkdir()
    np.save(npy_folder / "sub" / "rec001.npy", np.zeros((12, 1000)))
    with pytest.raises(DataError, match="ids occur twice"):
        ecgprobe.load_dataset("folder", npy_folder, fs=100, patient_column="patient")


def test_unknown_and_missing_leads(npy_folder):
    with pytest.raises(DataError, match="3 leads"):
        ecgprobe.load_dataset(
            "folder", npy_folder, fs=100, leads=("I", "II", "III"), patient_column="patient"
        )
