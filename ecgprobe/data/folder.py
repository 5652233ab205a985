"""A user's own folder of records: WFDB files, or ``.npy``/``.npz`` arrays, plus a labels CSV.

Records are found recursively; a record's id is its file name without extension. Labels come
from a CSV with an id column and one column per label (0/1 for multi-label tasks, numbers for
regression); other named columns (age, sex, patient, split) become metadata or drive the split.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np

from ecgprobe.data.leads import LEADS_12, canonical_leads
from ecgprobe.data.loading import DATASETS, check_choice, check_root, finish
from ecgprobe.data.record import SPLITS, RecordSet
from ecgprobe.data.sources import FileSource, NonFinitePolicy, file_digest, load_signals
from ecgprobe.data.wfdb_io import read_header, wfdb_digest, wfdb_reader
from ecgprobe.exceptions import ConfigError, DataError

__all__ = ["array_reader", "load_folder"]

_UNITS = {"mV": 1.0, "uV": 1e-3, "V": 1e3}


def _load_array(path: str) -> np.ndarray:
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                keys = [k for k in ("signal", "signals", "x", "ecg") if k in z.files] or z.files
                if len(keys) != 1 and not any(k in z.files for k in ("signal", "signals", "x", "ecg")):
                    raise DataError(f"{path}: holds arrays {z.files}; name the signal 'signal'")
                return np.asarray(z[keys[0]])
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}; the file is corrupt or not a NumPy array") from None


def array_reader(
    path: str, *, fs: float, leads: tuple[str, ...], scale: float
) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """Reader of one ``.npy``/``.npz`` record stored as ``(leads, samples)`` (or ``(samples, leads)``)."""
    x = _load_array(path)
    if x.ndim != 2:
        raise DataError(f"{path}: array has shape {x.shape}; expected (leads, samples)")
    if x.shape[0] != len(leads) and x.shape[1] == len(leads):
        x = x.T
    if x.shape[0] != len(leads):
        raise DataError(
            f"{path}: array has shape {x.shape} but {len(leads)} leads {list(leads)} were declared; pass leads=[...]"
        )
    return x.astype(np.float32) * np.float32(scale), fs, leads


def _find_records(base: Path) -> tuple[list[Path], str]:
    heas = sorted(base.rglob("*.hea"))
    if heas:
        return heas, "wfdb"
    arrays = sorted([*base.rglob("*.npy"), *base.rglob("*.npz")])
    if arrays:
        return arrays, "array"
    raise DataError(f"folder: no records (*.hea, *.npy, *.npz) found under {base}")


@DATASETS.register("folder", summary="your own folder: WFDB or .npy/.npz records plus a labels CSV")
def load_folder(
    root: str | Path,
    *,
    labels_csv: str | None = None,
    id_column: str = "id",
    label_columns: tuple[str, ...] | None = None,
    task: Literal["multilabel", "regression"] = "multilabel",
    patient_column: str | None = None,
    split_column: str | None = None,
    unlabeled: Literal["error", "drop"] = "error",
    fs: float | None = None,
    leads: tuple[str, ...] | None = None,
    units: Literal["mV", "uV", "V"] = "mV",
    length_s: float | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    lazy: bool | Literal["auto"] = "auto",
    nonfinite: NonFinitePolicy = "error",
) -> RecordSet:
    """Load a folder of records with an optional labels CSV.

    Args:
        root: folder with the records (searched recursively).
        labels_csv: CSV with one row per record (default ``<root>/labels.csv`` if present).
        id_column: CSV column holding record ids (file names without extension).
        label_columns: label columns; default: every column except id, patient, split, age, sex.
        task: ``multilabel`` (0/1 columns) or ``regression`` (numeric targets).
        patient_column: CSV column with patient ids (for a patient-wise split).
        split_column: CSV column with train/val/test per record; otherwise a seeded split.
        unlabeled: records without a CSV row: ``error`` (listing them) or ``drop`` (noted).
        fs: sampling rate in Hz; required for arrays, read from headers for WFDB records
            (records at another rate are then resampled).
        leads: lead names in the arrays' row order (default: the standard 12 when 12 rows);
            for WFDB, the leads to load (default: those of the first record).
        units: units of array values (converted to mV).
        length_s: crop/pad records to this length; ``None`` requires equal lengths.
        fractions: train/val/test shares when no split column is given.
        seed: seed of that split.
        lazy: keep signals on disk and read them per batch (``"auto"``: when over 2 GiB).
        nonfinite: NaN/inf samples: ``error`` (name the records), ``drop`` or ``zero``.
    """
    import pandas as pd

    base = check_root(root, "folder")
    check_choice(task, ("multilabel", "regression"), "task")
    check_choice(units, tuple(_UNITS), "units")
    paths, kind = _find_records(base)
    ids_all = [p.stem for p in paths]
    dup = [i for i, c in Counter(ids_all).items() if c > 1]
    if dup:
        raise DataError(
            f"folder: record ids occur twice under {base}, e.g. {dup[:5]}; file names must be unique"
        )
    notes: list[str] = []

    # ---- labels
    csv_path = Path(labels_csv) if labels_csv else base / "labels.csv"
    if labels_csv and not csv_path.exists():
        raise DataError(f"folder: labels CSV {csv_path} does not exist")
    if csv_path.exists():
        table = pd.read_csv(csv_path, dtype={id_column: str})
        if id_column not in table.columns:
            raise DataError(
                f"{csv_path}: no id column {id_column!r}; columns are {list(table.columns)}; pass id_column="
            )
        table[id_column] = table[id_column].astype(str).str.strip()
        if table[id_column].duplicated().any():
            d = table[id_column][table[id_column].duplicated()].tolist()[:5]
            raise DataError(f"{csv_path}: duplicate ids {d}; each record needs exactly one row")
        table = table.set_index(id_column)
        matched = [i for i in ids_all if i in table.index]
        if not matched:
            raise DataError(
                f"{csv_path}: none of its {len(table)} ids matches a record under {base} "
                f"(CSV ids e.g. {table.index[:3].tolist()}, record ids e.g. {ids_all[:3]}); ids must be file names without extension"
            )
        missing = [i for i in ids_all if i not in table.index]
        if missing and unlabeled == "error":
            raise DataError(
                f"folder: {len(missing)} record(s) have no row in {csv_path.name}, e.g. {missing[:5]}; "
                "add them or pass unlabeled='drop'"
            )
        if missing:
            notes.append(f"dropped {len(missing)} record(s) without a row in {csv_path.name}: {missing[:5]}")
        extra = len(table) - len(matched)
        if extra:
            notes.append(f"{extra} row(s) of {csv_path.name} match no record and are ignored")
        reserved = {patient_column, split_column, "age", "sex"}
        cols = list(label_columns) if label_columns else [c for c in table.columns if c not in reserved]
        absent = [c for c in cols if c not in table.columns]
        if absent:
            raise DataError(
                f"{csv_path}: label columns {absent} not found; columns are {list(table.columns)}"
            )
        keep_paths = [p for p in paths if p.stem in table.index]
        rows = table.loc[[p.stem for p in keep_paths]]
        values = rows[cols].apply(pd.to_numeric, errors="coerce")
        if task == "multilabel":
            bad = [c for c in cols if not values[c].isin([0, 1]).all()]
            if bad:
                raise DataError(
                    f"{csv_path}: label columns {bad} hold values other than 0/1; pass task='regression' for numeric targets "
                    "or label_columns=[...] to choose the 0/1 columns"
                )
            y = values.to_numpy(dtype=np.uint8)
        else:
            y = values.to_numpy(dtype=np.float32)
    else:
        notes.append("no labels CSV: records carry no labels")
        keep_paths, rows, cols = paths, pd.DataFrame(index=ids_all), []
        y = np.zeros((len(paths), 0), dtype=np.uint8)

    ids = np.asarray([p.stem for p in keep_paths], dtype=object)
    # ---- signals
    if kind == "wfdb":
        headers = [read_header(p) for p in keep_paths]
        lead_names = canonical_leads(list(leads)) if leads else headers[0].lead_names
        rates = Counter(h.fs for h in headers)
        target_fs = float(fs) if fs else float(headers[0].fs)
        if fs is None and len(rates) > 1:
            raise DataError(
                f"folder: records have different sampling rates {dict(rates)}; pass fs=<Hz> to resample"
            )
        durations = {round(h.n_samples / h.fs, 6) for h in headers}
        reader, digest, resample_ok = wfdb_reader, wfdb_digest, fs is not None
    else:
        if fs is None:
            raise ConfigError("folder: .npy/.npz records need fs=<sampling rate in Hz>")
        first = _load_array(str(keep_paths[0]))
        if leads is None:
            if 12 not in first.shape:
                raise ConfigError(
                    f"folder: arrays have shape {first.shape}; pass leads=[...] naming their rows"
                )
            leads = LEADS_12
        lead_names = canonical_leads(list(leads))
        target_fs = float(fs)
        durations = {round(max(first.shape) / target_fs, 6)}
        reader = functools.partial(array_reader, fs=target_fs, leads=lead_names, scale=_UNITS[units])
        digest = file_digest
        resample_ok = False
    if length_s is None:
        if len(durations) > 1:
            raise DataError(
                f"folder: records have different lengths {sorted(durations)[:5]} s; pass length_s=<seconds>"
            )
        length_s = durations.pop()
    source = FileSource(
        [str(p) for p in keep_paths],
        reader,
        digest=digest,
        leads=lead_names,
        fs=target_fs,
        n_samples=int(round(length_s * target_fs)),
        resample=resample_ok,
        fit=True,
        nonfinite=nonfinite,
    )
    signals = load_signals(source, lazy=lazy, nonfinite=nonfinite, ids=ids)

    # ---- patients, split, meta
    if patient_column:
        if patient_column not in rows.columns:
            raise DataError(f"folder: patient column {patient_column!r} not in the labels CSV")
        pids = rows[patient_column].astype(str).to_numpy(dtype=object)
    else:
        pids = ids.copy()
        notes.append("no patient column: the split is record-wise")
    split = None  # split by patient in finish()
    if split_column:
        if split_column not in rows.columns:
            raise DataError(f"folder: split column {split_column!r} not in the labels CSV")
        split = (
            rows[split_column]
            .astype(str)
            .str.lower()
            .replace({"valid": "val", "validation": "val"})
            .to_numpy(dtype=object)
        )
        bad = sorted(set(split) - set(SPLITS))
        if bad:
            raise DataError(f"folder: split column {split_column!r} has values {bad}; use train/val/test")
    meta = pd.DataFrame({c: rows[c].to_numpy() for c in ("age", "sex") if c in rows.columns})
    meta = meta.reindex(range(len(ids))) if meta.empty else meta
    return finish(
        signals,
        fs=target_fs,
        leads=tuple(lead_names),
        ids=ids,
        patient_ids=pids,
        label_names=tuple(cols),
        y=y,
        meta=meta,
        name="folder",
        params={
            "root": str(base),
            "labels_csv": str(csv_path) if csv_path.exists() else None,
            "id_column": id_column,
            "label_columns": list(cols),
            "task": task,
            "patient_column": patient_column,
            "split_column": split_column,
            "fs": fs,
            "leads": list(lead_names),
            "units": units,
            "length_s": length_s,
        },
        notes=notes,
        split=split,
        fractions=fractions,
        seed=seed,
        task=task,
    )
