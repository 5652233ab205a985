"""Writes records in the PhysioNet/CinC Challenge format (``.hea`` + MATLAB v4 ``.mat``), as the
Challenge's copies of PTB-XL are written, for round trips between loaders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ecgprobe.data.record import RecordSet

#: PTB-XL's ADC resolution: 1000 units per mV (its own files and the Challenge's copies).
GAIN = 1000.0


def write_challenge(
    records: RecordSet, folder: Path, dx: Sequence[Sequence[str]], *, prefix: str = "HR"
) -> list[str]:
    """Write every record of ``records`` as ``<prefix><id:05d>`` with ``# Dx:`` codes ``dx[i]``.

    Samples are stored as int16 at :data:`GAIN` units per mV, so PTB-XL's own int16 samples
    (also 1000/mV) survive the copy bit for bit. Returns the record names.
    """
    folder.mkdir(parents=True, exist_ok=True)
    x = records.signals
    names = []
    for i, rid in enumerate(records.ids):
        name = f"{prefix}{int(rid):05d}"
        digital = np.round(x[i] * GAIN).astype("<i2")  # (leads, samples)
        n_leads, n = digital.shape
        # MATLAB v4 header: type 20 (int16, column-major), rows, cols, imag flag, name length; name "val"
        mat_header = np.array([20, n_leads, n, 0, 4], dtype="<i4").tobytes() + b"val\x00"
        (folder / f"{name}.mat").write_bytes(mat_header + digital.T.tobytes())
        sums = digital.sum(axis=1, dtype=np.int64)
        lines = [f"{name} {n_leads} {records.fs:g} {n}"]
        for j, lead in enumerate(records.leads):
            cks = int(((sums[j] + 32768) % 65536) - 32768)
            lines.append(f"{name}.mat 16x1+24 {GAIN:g}(0)/mv 16 0 {int(digital[j, 0])} {cks} 0 {lead}")
        age = records.meta["age"].iloc[i]
        sex = {"male": "Male", "female": "Female"}.get(records.meta["sex"].iloc[i], "Unknown")
        lines += [
            f"# Age: {int(age) if np.isfinite(age) else 'NaN'}",
            f"# Sex: {sex}",
            f"#Dx: {','.join(dx[i])}" if i % 2 else f"# Dx: {','.join(dx[i])}",  # both spellings occur
            "# Rx: Unknown",
            "# Hx: Unknown",
            "# Sx: Unknown",
        ]
        (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
        names.append(name)
    return names


def ptbxl_dx(scp: Mapping[str, float], axis: object) -> list[str]:
    """The ``# Dx:`` codes the Challenge wrote for a PTB-XL record: the mapping's codes, unmerged."""
    from ecgprobe.data.harmonise import ptbxl_mapping

    table = ptbxl_mapping()
    by = {(k, v): c for k, v, c in table[["kind", "value", "snomed_code"]].to_numpy()}
    codes = {by[("scp_statement", s)] for s in scp}
    if isinstance(axis, str) and ("heart_axis", axis) in by:
        codes.add(by[("heart_axis", axis)])
    return sorted(codes)
