"""CODE-15% (Ribeiro et al. 2020/2021; Zenodo 4916206): 345,779 exams from the Brazilian
telehealth network, in its official layout.

- ``exams.csv``: ``exam_id, age, is_male, nn_predicted_age, 1dAVb, RBBB, LBBB, SB, ST, AF,
  patient_id, death, timey, normal_ecg, trace_file``.
- ``exams_part{0..17}.hdf5``: datasets ``tracings`` (N, 4096, 12) float32 and ``exam_id`` (N,);
  12 leads DI, DII, DIII, AVR, AVL, AVF, V1-V6 at 400 Hz; exams of 10 s (4,000 samples) or 7 s
  (2,800) are zero-padded on both sides to 4,096 samples.

Amplitude unit: the authors' documentation contradicts itself ("scale 1e-4V: so it should be
multiplied by 1000 to obtain the signals in V"); the stored values match millivolts on measured
R-wave amplitudes, which is the default here (``units="mV"``); pass ``units="1e-4V"`` for the
other reading. By default the central 10 s (4,000 samples) are kept, which removes exactly the
padding of 10 s exams; 7 s exams keep 600 zero samples at each end, and are counted in ``notes``
(``meta["zero_padded"]``) when signals are loaded eagerly.
Labels: the six abnormalities (1dAVb, RBBB, LBBB, SB, ST, AF); ``normal_ecg`` optionally; or
(``labels="scored"``/``"snomed"``) the same six as harmonised SNOMED-CT codes
(:mod:`ecgprobe.data.harmonise`), the Challenge's classes that CODE-15 % can express.
Requires ``h5py`` (``pip install "ecgprobe[code15]"``).
"""

from __future__ import annotations

import functools
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ecgprobe.data import harmonise
from ecgprobe.data.leads import LEADS_12
from ecgprobe.data.loading import DATASETS, check_choice, check_root, finish
from ecgprobe.data.record import ArraySource, RecordSet, content_digest
from ecgprobe.data.sources import FileSource, NonFinitePolicy, load_signals
from ecgprobe.exceptions import ConfigError, DataError, DependencyError

__all__ = ["CODE15_LABELS", "load_code15"]

CODE15_LABELS: tuple[str, ...] = ("1dAVb", "RBBB", "LBBB", "SB", "ST", "AF")
_DESCRIPTIONS = {
    "1dAVb": "first-degree AV block",
    "RBBB": "right bundle branch block",
    "LBBB": "left bundle branch block",
    "SB": "sinus bradycardia",
    "ST": "sinus tachycardia",
    "AF": "atrial fibrillation",
    "normal_ecg": "normal ECG",
}
FS = 400.0
_PADDED = 4096
_LOCK = threading.Lock()


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise DependencyError('the code15 loader reads HDF5: pip install "ecgprobe[code15]" (h5py)') from None
    return h5py


@lru_cache(maxsize=32)
def _open(path: str) -> Any:
    return _h5py().File(path, "r")


def hdf5_row_reader(spec: str, *, scale: float, crop: int) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """Reader for :class:`FileSource`: ``"<file>::<row>"`` -> (12, crop) float32 mV, 400 Hz."""
    x = np.asarray(_stored_row(spec), dtype=np.float32).T  # (12, 4096)
    start = (x.shape[1] - crop) // 2
    return x[:, start : start + crop] * np.float32(scale), FS, LEADS_12


def _stored_row(spec: str) -> np.ndarray:
    """The stored ``(4096, 12)`` samples of ``"<file>::<row>"``, as HDF5 holds them."""
    path, _, row = spec.rpartition("::")
    with _LOCK:  # h5py serialises access anyway; the lock keeps the shared handle cache safe
        try:
            return np.asarray(_open(path)["tracings"][int(row)])
        except (OSError, KeyError, IndexError) as exc:
            raise DataError(f"cannot read row {row} of {path}: {exc}; the file may be truncated") from None


def hdf5_row_digest(spec: str) -> str:
    """Digester for :class:`FileSource`: ``"<file>::<row>"`` -> digest of that row's stored samples."""
    return content_digest(_stored_row(spec))


def _index_parts(base: Path, files: list[str]) -> dict[int, tuple[str, int]]:
    """exam_id -> (hdf5 file, row), from each part's ``exam_id`` dataset."""
    where: dict[int, tuple[str, int]] = {}
    for name in files:
        p = base / name
        if not p.exists():
            raise DataError(
                f"code15: {name} is listed in exams.csv but missing in {base}; download all parts"
            )
        try:
            ids = np.asarray(_open(str(p))["exam_id"])
        except (OSError, KeyError) as exc:
            raise DataError(f"code15: {p} is not a CODE-15% part (no 'exam_id'/'tracings': {exc})") from None
        for row, eid in enumerate(ids):
            if int(eid) != 0:  # parts are padded with exam_id 0 rows
                where[int(eid)] = (str(p), row)
    return where


@DATASETS.register("code15", aliases=("code-15",), summary="CODE-15% (exams.csv + exams_part*.hdf5, 400 Hz)")
def load_code15(
    root: str | Path,
    *,
    labels: Literal["code15", "scored", "snomed"] = "code15",
    include_normal: bool = False,
    units: Literal["mV", "1e-4V"] = "mV",
    length_s: float = 10.0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    lazy: bool | Literal["auto"] = "auto",
    nonfinite: NonFinitePolicy = "error",
) -> RecordSet:
    """Load CODE-15%.

    Args:
        root: folder with ``exams.csv`` and the ``exams_part*.hdf5`` files.
        labels: code15 (the six abnormalities by their CODE-15 names) or the harmonised scored /
            snomed sets (the same six as SNOMED-CT codes; see ecgprobe.data.harmonise).
        include_normal: add the ``normal_ecg`` flag as a seventh label (labels=code15 only).
        units: how stored values are read: ``mV`` (default; see the module docstring) or ``1e-4V``.
        length_s: central seconds kept of the 10.24 s padded arrays (at most 10.24).
        fractions: train/val/test shares of the seeded, patient-wise, stratified split.
        seed: seed of the split.
        lazy: keep signals on disk and read them per batch (``"auto"``: when over 2 GiB).
        nonfinite: NaN/inf samples: ``error`` (name the records), ``drop`` or ``zero``.
    """
    import pandas as pd

    base = check_root(root, "code15", ("exams.csv",))
    check_choice(units, ("mV", "1e-4V"), "units")
    check_choice(labels, ("code15", *harmonise.HARMONISED_SETS), "labels")
    if include_normal and labels != "code15":
        raise ConfigError(
            f"code15: include_normal adds normal_ecg, which has no SNOMED-CT class; it needs labels='code15', "
            f"not {labels!r}"
        )
    crop = int(round(length_s * FS))
    if not 0 < crop <= _PADDED:
        raise DataError(f"code15: length_s={length_s} must lie in (0, {_PADDED / FS:g}] seconds")
    df = pd.read_csv(base / "exams.csv")
    need = {"exam_id", "age", "is_male", "patient_id", "trace_file", *CODE15_LABELS}
    if not need <= set(df.columns):
        raise DataError(f"code15: exams.csv lacks columns {sorted(need - set(df.columns))}")
    if df["exam_id"].duplicated().any():
        raise DataError(
            f"code15: exams.csv has duplicate exam_id values, e.g. {df['exam_id'][df['exam_id'].duplicated()].head(3).tolist()}"
        )
    present = sorted({f for f in df["trace_file"].astype(str).unique() if (base / f).exists()})
    notes: list[str] = []
    missing_parts = sorted(set(df["trace_file"].astype(str)) - set(present))
    if missing_parts:
        notes.append(
            f"{len(missing_parts)} HDF5 part(s) listed in exams.csv are absent ({missing_parts[:3]}); their exams are left out"
        )
    if not present:
        raise DataError(f"code15: none of the HDF5 parts listed in exams.csv is in {base}")
    where = _index_parts(base, present)
    df = df[df["trace_file"].astype(str).isin(present)]
    unlocated = ~df["exam_id"].astype(int).isin(where)
    if unlocated.any():
        raise DataError(
            f"code15: {int(unlocated.sum())} exam(s) of exams.csv are not in their HDF5 part, e.g. "
            f"{df['exam_id'][unlocated].head(3).tolist()}; the download is incomplete"
        )
    label_names = (*CODE15_LABELS, "normal_ecg") if include_normal else CODE15_LABELS
    y = df[list(label_names)].astype(bool).to_numpy(dtype=np.uint8)
    descriptions = _DESCRIPTIONS
    if labels != "code15":
        per_record = harmonise.code15_codes(y, label_names)
        expressible = {
            c for rec in harmonise.code15_codes(np.eye(len(label_names)), label_names) for c in rec
        }
        label_names, y, descriptions, label_notes = harmonise.harmonised_table(
            per_record, labels, dataset="code15", min_count=0, expressible=expressible
        )
        notes += label_notes
    ids = np.asarray([str(int(e)) for e in df["exam_id"]], dtype=object)
    pids = np.asarray(
        [f"{int(p)}" if pd.notna(p) else f"exam-{e}" for p, e in zip(df["patient_id"], df["exam_id"])],
        dtype=object,
    )
    scale = 1.0 if units == "mV" else 0.1
    source = FileSource(
        [f"{where[int(e)][0]}::{where[int(e)][1]}" for e in df["exam_id"]],
        functools.partial(hdf5_row_reader, scale=scale, crop=crop),
        digest=hdf5_row_digest,
        leads=LEADS_12,
        fs=FS,
        n_samples=crop,
        nonfinite=nonfinite,
        threads=1,
    )
    signals = load_signals(source, lazy=lazy, nonfinite=nonfinite, ids=ids)
    meta = pd.DataFrame(
        {
            "age": pd.to_numeric(df["age"], errors="coerce").to_numpy(),
            "sex": np.where(df["is_male"].astype(bool), "male", "female"),
            "patient_id": df["patient_id"].to_numpy(),
            **{
                c: df[c].to_numpy()
                for c in ("nn_predicted_age", "death", "timey", "normal_ecg")
                if c in df.columns
            },
        }
    )
    if isinstance(signals.source, ArraySource):  # eager: say which exams carry zero padding (7 s exams)
        sig = signals.source.array()
        edge = max(crop // 40, 1)
        flat = (np.abs(sig[:, :, :edge]).max(axis=(1, 2)) == 0) & (
            np.abs(sig[:, :, -edge:]).max(axis=(1, 2)) == 0
        )
        padded = np.zeros(len(ids), dtype=bool)
        padded[signals.keep] = flat
        meta["zero_padded"] = padded
        if flat.any():
            notes.append(
                f"{int(flat.sum())} exam(s) shorter than {length_s:g} s carry zero padding at both ends"
            )
    options = {"include_normal": include_normal, "units": units, "length_s": length_s, "parts": present}
    if labels != "code15":  # the default keeps the identity (and caches) of earlier loads
        options["labels"] = labels
    rs = finish(
        signals,
        fs=FS,
        leads=LEADS_12,
        ids=ids,
        patient_ids=pids,
        label_names=label_names,
        y=y,
        meta=meta,
        name="code15",
        params={"root": str(base), **options, "nonfinite": nonfinite},
        notes=notes,
        fractions=fractions,
        seed=seed,
    )
    return rs.with_descriptions(descriptions)
