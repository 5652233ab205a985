"""Physiology targets: NeuroKit2 measurements checked against an independent R-peak count on real
PTB-XL records, known synthetic causes, the content cache and the PTB-XL+ reference tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ecgprobe
from ecgprobe.data import physiology
from ecgprobe.data.physiology import QUANTITIES, measure, with_physiology_target
from ecgprobe.exceptions import ConfigError, DataError

pytest.importorskip("neurokit2")

#: Records of PTB-XL mini measured here (a fixed slice: the whole set takes too long for CI).
N_REAL = 60


def _independent_hr(x: np.ndarray, fs: float) -> float:
    """Heart rate from scipy's find_peaks on band-passed lead II (250 ms refractory period),
    independent of NeuroKit2's pipeline: the sign of the larger deflection decides polarity."""
    from scipy.signal import butter, find_peaks, sosfiltfilt

    sos = butter(2, [5.0, min(30.0, 0.45 * fs)], btype="band", fs=fs, output="sos")
    y = sosfiltfilt(sos, x)
    y = y if abs(y.max()) >= abs(y.min()) else -y
    peaks, _ = find_peaks(y, height=0.4 * np.percentile(y, 99.5), distance=int(0.25 * fs))
    return 60.0 * fs / float(np.mean(np.diff(peaks)))


@pytest.fixture(scope="module")
def real(ptbxl100):
    rs = ptbxl100.subset(np.arange(N_REAL))
    return rs, measure(rs)


@pytest.mark.realdata
def test_heart_rate_agrees_with_an_independent_count(real):
    rs, df = real
    lead = rs.leads.index("II")
    ref = np.array([_independent_hr(x[lead].astype(np.float64), rs.fs) for x in rs.read(np.arange(len(rs)))])
    err = np.abs(df["heart_rate"].to_numpy() - ref)
    assert np.mean(err <= 5.0) >= 0.90, np.sort(err)[-10:]


@pytest.mark.realdata
def test_real_measurements_are_plausible_and_flagged(real):
    rs, df = real
    assert list(df.index) == list(rs.ids) and set(QUANTITIES) <= set(df.columns)
    assert (df["quality"] == "ok").mean() >= 0.8
    ok = df[df["quality"] == "ok"]
    assert 60 <= ok["qrs"].median() <= 120 and 340 <= ok["qt"].median() <= 460
    assert 100 <= ok["pr"].median() <= 220 and -30 <= ok["axis"].median() <= 90
    np.testing.assert_allclose(ok["qtc"], ok["qtc_bazett"])
    rr = 60.0 / ok["heart_rate"]  # QTc formulas: Bazett > Fridericia exactly when RR < 1 s (HR > 60)
    fast = rr.to_numpy() < 0.95
    assert (ok["qtc_bazett"].to_numpy()[fast] > ok["qtc_fridericia"].to_numpy()[fast]).all()


@pytest.mark.realdata
def test_axis_follows_the_recorded_heart_axis(real):
    """PTB-XL's own heart_axis statement (from the recording device / cardiologist): left axis
    deviation (LAD, 0 to -30 degrees), abnormal LAD (ALAD, beyond -30), right (RAD, beyond 90)."""
    rs, df = real
    recorded = rs.meta["heart_axis"].reindex(df.index)
    lad, rad, none = df["axis"][recorded == "LAD"], df["axis"][recorded == "RAD"], df["axis"][recorded.isna()]
    assert len(lad) >= 5 and -35 <= lad.median() <= 5 and (lad < 10).all()
    assert len(rad) >= 1 and (rad > 90).all()
    assert (df["axis"][recorded == "ALAD"] < -30).all()
    assert 20 <= none.median() <= 80


def test_synthetic_causes_are_measured(synthetic_small):
    df = measure(synthetic_small)
    truth = synthetic_small.meta["heart_rate"].to_numpy()
    assert np.median(np.abs(df["heart_rate"].to_numpy() - truth)) < 2.0
    wide = synthetic_small.y[:, synthetic_small.label_names.index("wide_qrs")].astype(bool)
    assert df["qrs"][wide].median() > df["qrs"][~wide].median() + 5
    # the generated frontal axis varies by patient; limb leads obey Einthoven, so it is finite
    assert df["axis"].notna().all() and df["axis"].between(-180, 180).all()


def test_flat_record_is_undelineated():
    row = physiology.measure_signal(np.zeros((12, 1000)), 100.0, ecgprobe.data.LEADS_12)
    assert row["quality"] == "undelineated" and all(np.isnan(row[q]) for q in QUANTITIES)


def test_second_call_reads_the_cache(synthetic_small, tmp_path, monkeypatch):
    rs = synthetic_small.subset(np.arange(4))
    calls = []
    real_measure = physiology.measure_signal
    monkeypatch.setattr(physiology, "measure_signal", lambda *a: calls.append(1) or real_measure(*a))
    physiology.clear_memory()
    first = measure(rs, cache_dir=tmp_path)
    assert len(calls) == 4 and first.attrs["n_measured"] == 4
    physiology.clear_memory()  # prove the folder, not the process memory, serves the second call
    second = measure(rs, cache_dir=tmp_path)
    assert len(calls) == 4 and second.attrs == {"n_measured": 0, "n_cached": 4}
    pd.testing.assert_frame_equal(first, second)
    assert len(list((tmp_path / "physiology").rglob("*.json"))) == 4


def test_physiology_target_and_errors(synthetic_small):
    rs = synthetic_small.subset(np.arange(6))
    hr = with_physiology_target(rs, "heart_rate")
    assert hr.task == "regression" and hr.label_names == ("heart_rate",)
    np.testing.assert_allclose(hr.y[:, 0], measure(rs)["heart_rate"].to_numpy(dtype=np.float32))
    with pytest.raises(ConfigError, match="heart_rate"):
        with_physiology_target(rs, "heartrate")
    with pytest.raises(ConfigError, match="batch_size"):
        measure(rs, batch_size=0)


def _ptbxl_plus(tmp_path, ids, *, rr=True):
    (tmp_path / "features").mkdir()
    table = pd.DataFrame(
        {
            "P_Area_I": 0.1,
            "ecg_id": ids,  # not the first column, as in the published tables
            "HR__Global": [60.0 + i for i in range(len(ids))],
            "PR_Int_Global": 160.0,
            "QRS_Dur_Global": [90.0 + i for i in range(len(ids))],
            "QT_Int_Global": 400.0,
            "QT_IntBazett_Global": 410.0,
            "R_AxisFrontal_Global": 45.0,
        }
    )
    if rr:
        table["RR_Mean_Global"] = 1000.0
    table.to_csv(tmp_path / "features" / "12sl_features.csv", index=False)
    table.drop(columns=["HR__Global", "QT_IntBazett_Global"]).rename(
        columns={"R_AxisFrontal_Global": "QRS_AxisFront_Global"}
    ).to_csv(tmp_path / "features" / "unig_features.csv", index=False)
    return tmp_path


@pytest.mark.realdata
def test_ptbxl_plus_reference_replaces_measurement(ptbxl100, tmp_path):
    rs = ptbxl100.subset(np.arange(3))  # record ids "1", "2", "3" are PTB-XL's ecg_id
    folder = _ptbxl_plus(tmp_path, [1, 2])
    df = measure(rs, reference=folder)
    assert list(df["source"].unique()) == ["ptbxl+:12sl"]
    assert df.loc["1", "heart_rate"] == 60.0 and df.loc["2", "qrs"] == 91.0 and df.loc["1", "axis"] == 45.0
    assert df.loc["1", "qtc"] == 410.0 and np.isclose(df.loc["1", "qtc_fridericia"], 400.0)
    assert list(df["quality"]) == ["ok", "ok", "not_in_reference"] and np.isnan(df.loc["3", "qt"])
    unig = measure(rs, reference=folder, reference_source="unig")  # HR and QTc derived from RR
    assert unig.loc["2", "heart_rate"] == 60.0 and unig.loc["2", "qtc_bazett"] == 400.0
    assert unig.loc["2", "axis"] == 45.0 and unig.attrs["columns"]["axis"] == "QRS_AxisFront_Global"
    mapped = measure(rs, reference=folder, reference_columns={"qrs": "PR_Int_Global"})
    assert mapped.loc["1", "qrs"] == 160.0
    with pytest.raises(DataError, match="not a column"):
        measure(rs, reference=folder, reference_columns={"qrs": "nope"})
    with pytest.raises(ConfigError, match="reference_source"):
        measure(rs, reference=folder, reference_source="glasgow")
    with pytest.raises(DataError, match=r"ecgdeli_features\.csv"):
        measure(rs, reference=folder, reference_source="ecgdeli")
