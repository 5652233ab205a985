"""PTB-XL (Wagner et al. 2020) in its official PhysioNet layout.

Labels are aggregated from ``scp_statements.csv`` exactly as in the PTB-XL benchmark
(Strodthoff et al. 2020, ``ecg_ptbxl_benchmarking``): every SCP statement of a record counts,
whatever its likelihood (unless ``min_likelihood`` says otherwise), and is mapped to

- ``all``: the statement itself (71 statements);
- ``diagnostic``: statements with ``diagnostic == 1`` (44);
- ``subclass``: their ``diagnostic_subclass`` (23);
- ``superclass``: their ``diagnostic_class`` (5: NORM, MI, STTC, CD, HYP);
- ``form``: statements with ``form == 1`` (19); ``rhythm``: with ``rhythm == 1`` (12);
- ``scored`` / ``snomed``: the harmonised SNOMED-CT labels of :mod:`ecgprobe.data.harmonise`
  (the Challenge 2021 scored classes / every mapped code, axis deviation from ``heart_axis``),
  so that a PTB-XL record and its Challenge-2021 copy carry the same labels.

Label columns are sorted by name. The recommended split is used: ``strat_fold`` 1-8 train,
9 validation, 10 test; the folds were built patient-wise, so no patient crosses splits.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np

from ecgprobe.data import harmonise
from ecgprobe.data.leads import LEADS_12
from ecgprobe.data.loading import DATASETS, check_choice, check_root, finish, missing_files, multi_hot
from ecgprobe.data.record import RecordSet
from ecgprobe.data.sources import FileSource, NonFinitePolicy, load_signals
from ecgprobe.data.wfdb_io import wfdb_digest, wfdb_reader
from ecgprobe.exceptions import ConfigError, DataError
from ecgprobe.options import Range

if TYPE_CHECKING:  # pandas is imported where it is used (light commands stay light)
    import pandas as pd

__all__ = ["LABEL_SETS", "aggregate_labels", "load_ptbxl"]

LABEL_SETS: tuple[str, ...] = (
    "all",
    "diagnostic",
    "subclass",
    "superclass",
    "form",
    "rhythm",
    *harmonise.HARMONISED_SETS,
)
_ALIASES = {"subdiagnostic": "subclass", "superdiagnostic": "superclass"}
#: PTB-XL encodes ages above 89 as 300 (HIPAA); they are reported as 90 with ``age_censored``.
_CENSORED_AGE = 300


def _parse_codes(df: pd.DataFrame) -> pd.Series:
    import pandas as pd

    out = {}
    for ecg_id, raw in df["scp_codes"].items():
        try:
            codes = ast.literal_eval(str(raw))
            if not isinstance(codes, dict):
                raise ValueError
        except (ValueError, SyntaxError):
            raise DataError(
                f"ptbxl_database.csv: ecg_id {ecg_id} has malformed scp_codes {raw!r}; expected a dict "
                "such as {'NORM': 100.0}"
            ) from None
        out[ecg_id] = {str(k): float(v) for k, v in codes.items()}
    return pd.Series(out, dtype=object)


def aggregate_labels(
    scp_codes: pd.Series, statements: pd.DataFrame, label_set: str, *, min_likelihood: float = 0.0
) -> tuple[list[list[str]], list[str]]:
    """Map each record's SCP statements onto ``label_set`` (the benchmark's aggregation).

    Args:
        scp_codes: per record, a dict statement -> likelihood (0-100).
        statements: ``scp_statements.csv`` indexed by statement.
        label_set: one of :data:`LABEL_SETS`.
        min_likelihood: statements with a lower likelihood are ignored (0 keeps all, as the
            benchmark does).

    Returns:
        Per record the sorted list of labels, and the full label vocabulary of the set.
    """
    import pandas as pd

    if label_set == "all":
        vocab_map = {s: s for s in statements.index}
    elif label_set in ("diagnostic", "subclass", "superclass"):
        diag = statements[statements["diagnostic"] == 1.0]
        column = {"diagnostic": None, "subclass": "diagnostic_subclass", "superclass": "diagnostic_class"}[
            label_set
        ]
        vocab_map = {
            s: (s if column is None else diag.at[s, column])
            for s in diag.index
            if column is None or pd.notna(diag.at[s, column])
        }
    else:
        sel = statements[statements[label_set] == 1.0]
        vocab_map = {s: s for s in sel.index}
    per_record = [
        sorted({str(vocab_map[c]) for c, lik in codes.items() if c in vocab_map and lik >= min_likelihood})
        for codes in scp_codes
    ]
    return per_record, sorted({str(v) for v in vocab_map.values()})


@DATASETS.register(
    "ptbxl",
    aliases=("ptb-xl",),
    summary="PTB-XL 1.0.x, official PhysioNet layout (ptbxl_database.csv, records100/, records500/)",
)
def load_ptbxl(
    root: str | Path,
    *,
    sampling_rate: Literal[100, 500] = 500,
    labels: str = "superclass",
    min_likelihood: Annotated[float, Range(ge=0, le=100)] = 0.0,
    min_count: Annotated[int, Range(ge=0)] = 1,
    drop_unlabeled: bool = True,
    val_folds: Annotated[tuple[int, ...], Range(ge=1, le=10)] = (9,),
    test_folds: Annotated[tuple[int, ...], Range(ge=1, le=10)] = (10,),
    lazy: bool | Literal["auto"] = "auto",
    nonfinite: NonFinitePolicy = "error",
) -> RecordSet:
    """Load PTB-XL.

    Args:
        root: folder holding ``ptbxl_database.csv``, ``scp_statements.csv`` and ``records*/``.
        sampling_rate: 100 (``records100``) or 500 (``records500``) Hz.
        labels: label set: all, diagnostic, subclass, superclass, form, rhythm, or the
            harmonised scored / snomed (SNOMED-CT codes; see ecgprobe.data.harmonise).
        min_likelihood: ignore SCP statements below this likelihood (0 = benchmark protocol).
        min_count: keep labels with at least this many positive records.
        drop_unlabeled: drop records with no label of the chosen set (benchmark protocol); the
            number dropped is reported in ``notes``.
        val_folds: strat_folds forming the validation split.
        test_folds: strat_folds forming the test split; the rest is train.
        lazy: keep signals on disk and read them per batch (``"auto"``: when over 2 GiB).
        nonfinite: NaN/inf samples: ``error`` (name the records), ``drop`` or ``zero``.
    """
    import pandas as pd

    base = check_root(root, "ptbxl", ("ptbxl_database.csv", "scp_statements.csv"))
    check_choice(int(sampling_rate), (100, 500), "sampling_rate")
    label_set = check_choice(_ALIASES.get(labels, labels), LABEL_SETS, "labels")
    if set(val_folds) & set(test_folds):
        raise ConfigError(
            f"val_folds {val_folds} and test_folds {test_folds} overlap; a fold can be in one split"
        )
    try:
        df = pd.read_csv(base / "ptbxl_database.csv", index_col="ecg_id")
        statements = pd.read_csv(base / "scp_statements.csv", index_col=0)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"ptbxl: cannot parse the metadata CSVs in {base}: {exc}") from None
    need = {"patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_lr", "filename_hr"}
    if not need <= set(df.columns):
        raise DataError(f"ptbxl_database.csv in {base} lacks columns {sorted(need - set(df.columns))}")
    if df.index.duplicated().any():
        raise DataError(
            f"ptbxl_database.csv has duplicate ecg_id values, e.g. {df.index[df.index.duplicated()][:5].tolist()}"
        )

    notes: list[str] = []
    if label_set in harmonise.HARMONISED_SETS:
        label_names, y, descriptions, notes = _harmonised(df, label_set, min_likelihood, min_count)
    else:
        per_record, vocab = aggregate_labels(
            _parse_codes(df), statements, label_set, min_likelihood=min_likelihood
        )
        y_full = multi_hot(per_record, vocab)
        counts = y_full.sum(axis=0)
        keep_label = counts >= max(min_count, 0)
        if (~keep_label).any() and min_count > 0:
            notes.append(
                f"{int((~keep_label).sum())} of {len(vocab)} {label_set} labels have < {min_count} positives and are left out"
            )
        label_names = tuple(np.asarray(vocab)[keep_label])
        y = y_full[:, keep_label]
        descriptions = _descriptions(statements, label_set, label_names)

    keep = np.ones(len(df), dtype=bool)
    if drop_unlabeled:
        keep = y.sum(axis=1) > 0
        if (~keep).any():
            notes.append(
                f"dropped {int((~keep).sum())} records without any {label_set} label (drop_unlabeled=True)"
            )

    column = "filename_lr" if int(sampling_rate) == 100 else "filename_hr"
    rel = df[column].astype(str).to_numpy()
    paths = [base / f"{r}.hea" for r in rel[keep]]
    gone = missing_files(paths) + missing_files([p.with_suffix(".dat") for p in paths])
    if gone:
        raise DataError(
            f"ptbxl: {len(gone)} record file(s) listed in ptbxl_database.csv are missing, e.g. "
            f"{[str(p) for p in gone[:3]]}; the download is incomplete (re-download records{int(sampling_rate)}/)"
        )

    sub = df[keep]
    fs = float(sampling_rate)
    ids = np.asarray([str(i) for i in sub.index], dtype=object)
    source = FileSource(
        [str(p) for p in paths],
        wfdb_reader,
        digest=wfdb_digest,
        leads=LEADS_12,
        fs=fs,
        n_samples=int(10 * fs),
        nonfinite=nonfinite,
        fixes=_fixes(int(sampling_rate)),
    )
    signals = load_signals(source, lazy=lazy, nonfinite=nonfinite, ids=ids)

    fold = sub["strat_fold"].to_numpy()
    split = np.where(np.isin(fold, test_folds), "test", np.where(np.isin(fold, val_folds), "val", "train"))
    age = pd.to_numeric(sub["age"], errors="coerce")
    meta = pd.DataFrame(
        {
            "age": age.where(age != _CENSORED_AGE, 90.0).to_numpy(),
            "age_censored": (age == _CENSORED_AGE).to_numpy(),
            "sex": sub["sex"].map({0: "male", 1: "female"}).to_numpy(),
            "patient_id": sub["patient_id"].to_numpy(),
            "strat_fold": fold,
        }
    )
    for col in (
        "height",
        "weight",
        "site",
        "device",
        "recording_date",
        "heart_axis",
        "baseline_drift",
        "static_noise",
        "burst_noise",
        "electrodes_problems",
        "extra_beats",
        "pacemaker",
        "validated_by_human",
        "report",
    ):
        if col in sub.columns:
            meta[col] = sub[col].to_numpy()
    pids = np.asarray(
        [f"{int(p)}" if pd.notna(p) else f"record-{i}" for p, i in zip(sub["patient_id"], sub.index)],
        dtype=object,
    )
    params = {
        "root": str(base),
        "sampling_rate": int(sampling_rate),
        "labels": label_set,
        "min_likelihood": min_likelihood,
        "min_count": min_count,
        "drop_unlabeled": drop_unlabeled,
        "val_folds": list(val_folds),
        "test_folds": list(test_folds),
        "nonfinite": nonfinite,
    }
    rs = finish(
        signals,
        fs=fs,
        leads=LEADS_12,
        ids=ids,
        patient_ids=pids,
        label_names=label_names,
        y=y[keep],
        split=split,
        meta=meta,
        name="ptbxl",
        params=params,
        notes=notes,
    )
    return rs.with_descriptions(descriptions)


def _harmonised(
    df: pd.DataFrame, label_set: str, min_likelihood: float, min_count: int
) -> tuple[tuple[str, ...], np.ndarray, dict[str, str], list[str]]:
    """The ``scored``/``snomed`` label table, with notes naming what has no code (listed by ``info``)."""
    axis = df["heart_axis"] if "heart_axis" in df.columns else None
    per_record, unmapped = harmonise.ptbxl_record_codes(_parse_codes(df), axis, min_likelihood=min_likelihood)
    mapping = harmonise.ptbxl_mapping()
    expressible = {harmonise.canonical_code(c) for c in mapping["snomed_code"]}
    names, y, descriptions, notes = harmonise.harmonised_table(
        per_record, label_set, dataset="ptbxl", min_count=min_count, expressible=expressible
    )
    if unmapped:
        shown = ", ".join(f"{k} x{v}" for k, v in unmapped.most_common())
        notes.insert(0, f"{len(unmapped)} value(s) have no SNOMED-CT code in ptbxl_snomed.csv: {shown}")
    if axis is None:
        notes.append("ptbxl_database.csv has no heart_axis column: no axis labels (LAD, RAD) derived")
    else:
        notes.append(
            f"axis labels from heart_axis for {int(axis.notna().sum())} of {len(axis)} records "
            "(MID and missing values carry no axis code)"
        )
    return names, y, descriptions, notes


_SUPERCLASS = {
    "NORM": "normal ECG",
    "MI": "myocardial infarction",
    "STTC": "ST/T change",
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
}


def _fixes(sampling_rate: int) -> dict[str, str]:
    """Advice for a record that is not as PTB-XL publishes it: every official record has the 12
    standard leads, records100/ is at 100 Hz and records500/ at 500 Hz, so no loader option can
    make such a file right; the fix is the official file."""
    restore = (
        f"official PTB-XL records{sampling_rate}/ files have the 12 standard leads at {sampling_rate} Hz, so this "
        "file was modified or comes from elsewhere; restore it from the PTB-XL download (its SHA256SUMS.txt "
        "lists the official checksums)"
    )
    return {"leads": restore, "fs": restore}


def _descriptions(statements: pd.DataFrame, label_set: str, names: tuple[str, ...]) -> dict[str, str]:
    if label_set == "superclass":
        return {n: _SUPERCLASS.get(n, n) for n in names}
    if label_set == "subclass":
        return {n: f"diagnostic subclass {n}" for n in names}
    return {n: str(statements.at[n, "description"]) for n in names if n in statements.index}
