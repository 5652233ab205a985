"""The fast WFDB reader against wfdb itself, on records whose ADC baseline and gain are not trivial."""

from __future__ import annotations

import numpy as np
import pytest

wfdb = pytest.importorskip("wfdb")

from ecgprobe.data.wfdb_io import read_record  # noqa: E402


@pytest.mark.parametrize("baseline", [0, 137, -2048])
def test_physical_values_match_wfdb_with_a_non_zero_adc_baseline(tmp_path, baseline):
    rng = np.random.default_rng(baseline & 0xFF)
    n, leads = 1000, ["I", "II", "V1"]
    digital = rng.integers(-3000, 3000, size=(n, len(leads))).astype(np.int16)
    wfdb.wrsamp(
        "rec",
        fs=500,
        units=["mV"] * len(leads),
        sig_name=leads,
        d_signal=digital,
        fmt=["16"] * len(leads),
        adc_gain=[200.0, 400.0, 1000.0],
        baseline=[baseline] * len(leads),
        write_dir=str(tmp_path),
    )
    ours, header = read_record(tmp_path / "rec.hea")
    theirs = wfdb.rdrecord(str(tmp_path / "rec"), physical=True).p_signal.T
    assert [s.baseline for s in header.signals] == [baseline] * len(leads)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    # and by hand: (digital - baseline) / gain
    np.testing.assert_allclose(ours[1], (digital[:, 1] - baseline) / 400.0, rtol=1e-6)
