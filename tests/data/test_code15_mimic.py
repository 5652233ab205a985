"""CODE-15% and MIMIC-IV-ECG loaders on small datasets written in their official layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ecgprobe
from ecgprobe.exceptions import DataError

h5py = pytest.importorskip("h5py", reason="the code15 loader needs h5py (pip install 'ecgprobe[code15]')")


@pytest.fixture
def code15_root(tmp_path, ptbxl100):
    """Two HDF5 parts in CODE-15%'s layout, signals taken from real PTB-XL records resampled to 400 Hz."""
    from ecgprobe.data.preprocess import fit_length, resample

    x = resample(ptbxl100.signals[:30], 100, 400)  # (30, 12, 4000): 10 s
    x[25:] = 0
    x[25:, :, 600:3400] = resample(ptbxl100.signals[25:30], 100, 400)[:, :, :2800]  # 7 s exams, centred
    padded = np.stack([fit_length(np.pad(r, ((0, 0), (48, 0))), 4096) for r in x])  # 48 zeros each side
    exam_ids = np.arange(1000, 1030)
    rng = np.random.default_rng(0)
    rows = []
    for part, sl in (("exams_part0.hdf5", slice(0, 16)), ("exams_part1.hdf5", slice(16, 30))):
        with h5py.File(tmp_path / part, "w") as f:
            n = sl.stop - sl.start
            f["tracings"] = np.concatenate([padded[sl].transpose(0, 2, 1), np.zeros((1, 4096, 12))]).astype(
                np.float32
            )
            f["exam_id"] = np.concatenate([exam_ids[sl], [0]])  # parts end with an exam_id 0 filler row
        for e in exam_ids[sl]:
            rows.append({"exam_id": e, "age": int(rng.integers(20, 90)), "is_male": bool(rng.integers(0, 2)),
                         "nn_predicted_age": 50.0, "1dAVb": 0, "RBBB": int(e % 5 == 0), "LBBB": 0, "SB": int(e % 3 == 0),
                         "ST": 0, "AF": int(e % 7 == 0), "patient_id": e // 2, "death": False, "timey": 1.0,
                         "normal_ecg": int(e % 2 == 0), "trace_file": part})  # fmt: skip
        assert n > 0
    pd.DataFrame(rows).to_csv(tmp_path / "exams.csv", index=False)
    return tmp_path, x


def test_code15_reads_official_layout(code15_root):
    root, x = code15_root
    rs = ecgprobe.load_dataset("code15", root)
    assert len(rs) == 30 and rs.fs == 400 and rs.n_samples == 4000
    assert rs.label_names == ("1dAVb", "RBBB", "LBBB", "SB", "ST", "AF")
    np.testing.assert_allclose(rs.signals[3], x[3], atol=1e-6)  # the central 10 s, padding removed
    assert rs.meta["zero_padded"].sum() == 5 and any("5 exam(s) shorter" in n for n in rs.notes)
    assert set(rs.meta["sex"]) <= {"male", "female"}
    for pid in set(rs.patient_ids):
        assert len(set(rs.split[rs.patient_ids == pid])) == 1
    lazy = ecgprobe.load_dataset("code15", root, lazy=True, include_normal=True)
    np.testing.assert_allclose(lazy.read([3])[0], x[3], atol=1e-6)
    assert lazy.label_names[-1] == "normal_ecg"
    assert np.allclose(ecgprobe.load_dataset("code15", root, units="1e-4V").signals, rs.signals * 0.1)


def test_code15_bad_inputs(code15_root):
    root, _ = code15_root
    df = pd.read_csv(root / "exams.csv")
    df.loc[0, "exam_id"] = 99999
    df.to_csv(root / "exams.csv", index=False)
    with pytest.raises(DataError, match=r"not in their HDF5 part, e.g. \[99999\]"):
        ecgprobe.load_dataset("code15", root)
    (root / "exams_part1.hdf5").unlink()
    df.iloc[1:].to_csv(root / "exams.csv", index=False)
    rs = ecgprobe.load_dataset("code15", root)
    assert len(rs) == 15 and any("absent" in n for n in rs.notes)


@pytest.fixture
def mimic_root(tmp_path, ptbxl_root):
    """Six records in MIMIC-IV-ECG's layout (lead order I, II, III, aVR, aVF, aVL, V1-V6)."""
    import wfdb

    from ecgprobe.data.wfdb_io import read_record

    mimic_order = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
    rows, mm, sigs = [], [], []
    for k in range(6):
        x, _ = read_record(ptbxl_root / "records500" / "00000" / f"0000{k + 1}_hr.hea")
        sigs.append(x)
        subject, study = 10000032 + k // 2, 40000000 + k
        rel = f"files/p1000/p{subject}/s{study}"
        (tmp_path / rel).mkdir(parents=True)
        reordered = x[[0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11]]
        wfdb.wrsamp(str(study), fs=500, units=["mV"] * 12, sig_name=mimic_order, p_signal=reordered.T.astype(np.float64),
                    fmt=["16"] * 12, adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(tmp_path / rel))  # fmt: skip
        rows.append({"subject_id": subject, "study_id": study, "file_name": study, "ecg_time": "2180-07-23 08:44:00",
                     "path": f"{rel}/{study}"})  # fmt: skip
        mm.append({"subject_id": subject, "study_id": study, "report_0": "Sinus rhythm",
                   "report_1": "Left axis deviation" if k % 2 else None, "report_2": "--- Pediatric criteria used ---",
                   "rr_interval": 800 + k, "qrs_onset": 100, "qrs_end": 190 + k, "t_end": 500})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "record_list.csv", index=False)
    pd.DataFrame(mm).to_csv(tmp_path / "machine_measurements.csv", index=False)
    pd.DataFrame({"subject_id": [10000032, 10000033, 10000034], "gender": ["M", "F", "F"], "anchor_age": [60, 70, 40],
                  "anchor_year": [2180, 2178, 2180]}).to_csv(tmp_path / "patients.csv", index=False)  # fmt: skip
    return tmp_path, np.stack(sigs)


def test_mimic_reads_official_layout(mimic_root):
    root, sigs = mimic_root
    rs = ecgprobe.load_dataset("mimic-iv-ecg", root, labels="machine_statements", min_count=2,
                               patients_csv=str(root / "patients.csv"))  # fmt: skip
    assert len(rs) == 6 and rs.leads == ecgprobe.data.LEADS_12
    np.testing.assert_allclose(rs.signals, sigs, atol=0.006)  # 200 adu/mV quantisation
    assert rs.label_names == ("Left axis deviation", "Sinus rhythm")
    assert rs.y[:, 1].all() and rs.y[:, 0].tolist() == [0, 1, 0, 1, 0, 1]
    assert rs.meta["qrs_ms"].tolist() == [90 + k for k in range(6)]
    assert rs.meta["age"].tolist()[:4] == [60, 60, 72, 72] and rs.meta["sex"].iloc[2] == "female"
    for pid in set(rs.patient_ids):
        assert len(set(rs.split[rs.patient_ids == pid])) == 1
    assert rs.with_meta_target("qrs_ms").task == "regression"
    plain = ecgprobe.load_dataset("mimic-iv-ecg", root, max_records=3)
    assert len(plain) == 3 and plain.label_names == ()


def test_mimic_missing_files(mimic_root):
    root, _ = mimic_root
    next(root.rglob("*.dat")).unlink()
    with pytest.raises(DataError, match="1 record file"):
        ecgprobe.load_dataset("mimic-iv-ecg", root)
