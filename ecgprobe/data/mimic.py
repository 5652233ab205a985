"""MIMIC-IV-ECG (PhysioNet, v1.0): ~800,000 diagnostic 12-lead ECGs, in its official layout.

- ``record_list.csv``: ``subject_id, study_id, file_name, ecg_time, path`` (``path`` is the record
  without extension, e.g. ``files/p1000/p10000032/s40689238/40689238``);
- WFDB records, 500 Hz, 10 s, leads I, II, III, aVR, aVF, aVL, V1-V6 (note aVF before aVL: the
  loader reorders by name);
- ``machine_measurements.csv`` (optional): the cart's statements ``report_0..report_17`` and
  intervals/axes (``rr_interval, p_onset, p_end, qrs_onset, qrs_end, t_end, p_axis, qrs_axis, t_axis``).

The module carries no diagnoses: ``labels="none"`` (embeddings only), or
``labels="machine_statements"`` — the cart's own statements as multi-label targets (machine
output, not a clinician's reading; say so when reporting). Intervals become metadata columns
usable as regression targets (``records.with_meta_target("qrs_ms")``). Age and sex live in
MIMIC-IV's ``hosp/patients.csv``; pass it as ``patients_csv`` to add them.
Patient ids are ``subject_id``; the split is seeded and patient-wise. Some records contain
invalid samples (NaN): choose ``nonfinite="zero"`` or ``"drop"`` deliberately.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ecgprobe.data.leads import LEADS_12
from ecgprobe.data.loading import DATASETS, check_choice, check_root, finish, missing_files, multi_hot
from ecgprobe.data.record import RecordSet
from ecgprobe.data.sources import FileSource, NonFinitePolicy, load_signals
from ecgprobe.data.wfdb_io import wfdb_digest, wfdb_reader
from ecgprobe.exceptions import DataError

if TYPE_CHECKING:  # pandas is imported where it is used (light commands stay light)
    import pandas as pd

__all__ = ["load_mimic_iv_ecg"]

_CHECK_FILES_MAX = 50_000


def _statements(row: pd.Series, columns: list[str]) -> list[str]:
    out = []
    for c in columns:
        v = row[c]
        if isinstance(v, str):
            text = re.sub(r"\s+", " ", v).strip().rstrip(".").strip()
            if text and not text.startswith("---"):
                out.append(text)
    return out


@DATASETS.register(
    "mimic-iv-ecg",
    aliases=("mimic", "mimic-ecg"),
    summary="MIMIC-IV-ECG v1.0 (record_list.csv + WFDB files, 500 Hz)",
)
def load_mimic_iv_ecg(
    root: str | Path,
    *,
    labels: Literal["none", "machine_statements"] = "none",
    min_count: int = 100,
    patients_csv: str | None = None,
    max_records: int | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    lazy: bool | Literal["auto"] = "auto",
    nonfinite: NonFinitePolicy = "error",
) -> RecordSet:
    """Load MIMIC-IV-ECG.

    Args:
        root: folder with ``record_list.csv`` and ``files/``.
        labels: ``none`` or ``machine_statements`` (the cart's statements, see the module docstring).
        min_count: keep statements made for at least this many records.
        patients_csv: MIMIC-IV ``hosp/patients.csv`` to add age (at the ECG) and sex.
        max_records: load only the first N records of ``record_list.csv`` (quick looks).
        fractions: train/val/test shares of the seeded, patient-wise split.
        seed: seed of the split.
        lazy: keep signals on disk and read them per batch (``"auto"``: when over 2 GiB).
        nonfinite: NaN/inf samples: ``error`` (name the records), ``drop`` or ``zero``.
    """
    import pandas as pd

    base = check_root(root, "mimic-iv-ecg", ("record_list.csv",))
    check_choice(labels, ("none", "machine_statements"), "labels")
    rec = pd.read_csv(base / "record_list.csv", nrows=max_records)
    need = {"subject_id", "study_id", "path"}
    if not need <= set(rec.columns):
        raise DataError(f"mimic-iv-ecg: record_list.csv lacks columns {sorted(need - set(rec.columns))}")
    if rec["study_id"].duplicated().any():
        raise DataError(
            f"mimic-iv-ecg: duplicate study_id in record_list.csv, e.g. {rec['study_id'][rec['study_id'].duplicated()].head(3).tolist()}"
        )
    notes: list[str] = []
    paths = [base / f"{p}.hea" for p in rec["path"].astype(str)]
    if len(paths) <= _CHECK_FILES_MAX:
        gone = missing_files(paths) + missing_files([p.with_suffix(".dat") for p in paths])
        if gone:
            raise DataError(
                f"mimic-iv-ecg: {len(gone)} record file(s) listed in record_list.csv are missing, e.g. "
                f"{[str(p) for p in gone[:3]]}; the download is incomplete (or pass max_records=)"
            )
    else:
        notes.append(f"{len(paths)} records: files are checked when read, not up front")
    meta = pd.DataFrame(
        {
            "subject_id": rec["subject_id"].to_numpy(),
            "study_id": rec["study_id"].to_numpy(),
            "ecg_time": rec.get("ecg_time", pd.Series([None] * len(rec))).to_numpy(),
        }
    )
    label_names: tuple[str, ...] = ()
    y = np.zeros((len(rec), 0), dtype=np.uint8)
    mm_path = base / "machine_measurements.csv"
    if mm_path.exists():
        mm = pd.read_csv(mm_path, low_memory=False).drop_duplicates("study_id").set_index("study_id")
        mm = mm.reindex(rec["study_id"])
        for col in ("rr_interval", "p_axis", "qrs_axis", "t_axis"):
            if col in mm:
                meta[col] = pd.to_numeric(mm[col], errors="coerce").to_numpy()
        if {"qrs_onset", "qrs_end"} <= set(mm.columns):
            meta["qrs_ms"] = (
                pd.to_numeric(mm["qrs_end"], errors="coerce")
                - pd.to_numeric(mm["qrs_onset"], errors="coerce")
            ).to_numpy()
        if {"qrs_onset", "t_end"} <= set(mm.columns):
            meta["qt_ms"] = (
                pd.to_numeric(mm["t_end"], errors="coerce") - pd.to_numeric(mm["qrs_onset"], errors="coerce")
            ).to_numpy()
        if labels == "machine_statements":
            cols = [c for c in mm.columns if re.fullmatch(r"report_\d+", c)]
            per = [_statements(row, cols) for _, row in mm[cols].iterrows()]
            counts = Counter(s for stmts in per for s in set(stmts))
            vocab = sorted(s for s, k in counts.items() if k >= min_count)
            y = multi_hot(per, vocab)
            label_names = tuple(vocab)
            notes.append(
                f"labels are the cart's machine statements ({len(vocab)} made for >= {min_count} records), not diagnoses"
            )
    elif labels == "machine_statements":
        raise DataError(f"mimic-iv-ecg: labels='machine_statements' needs machine_measurements.csv in {base}")
    if patients_csv:
        pts = pd.read_csv(patients_csv).set_index("subject_id")
        if not {"gender", "anchor_age", "anchor_year"} <= set(pts.columns):
            raise DataError(
                f"{patients_csv}: expected MIMIC-IV hosp/patients.csv with gender, anchor_age, anchor_year"
            )
        p = pts.reindex(rec["subject_id"])
        year = pd.to_datetime(meta["ecg_time"], errors="coerce").dt.year
        meta["age"] = (p["anchor_age"].to_numpy() + (year.to_numpy() - p["anchor_year"].to_numpy())).astype(
            float
        )
        meta["sex"] = p["gender"].map({"M": "male", "F": "female"}).to_numpy()
    ids = np.asarray([str(s) for s in rec["study_id"]], dtype=object)
    pids = np.asarray([str(s) for s in rec["subject_id"]], dtype=object)
    source = FileSource(
        [str(p) for p in paths],
        wfdb_reader,
        digest=wfdb_digest,
        leads=LEADS_12,
        fs=500.0,
        n_samples=5000,
        nonfinite=nonfinite,
    )
    options = {
        "labels": labels,
        "min_count": min_count,
        "patients_csv": patients_csv,
        "max_records": max_records,
    }
    return finish(
        load_signals(source, lazy=lazy, nonfinite=nonfinite, ids=ids),
        fs=500.0,
        leads=LEADS_12,
        ids=ids,
        patient_ids=pids,
        label_names=label_names,
        y=y,
        meta=meta,
        name="mimic-iv-ecg",
        params={"root": str(base), **options, "nonfinite": nonfinite},
        notes=notes,
        fractions=fractions,
        seed=seed,
    )
