"""Reference physiology values from PTB-XL+ (Strodthoff et al. 2023, Sci. Data 10:279).

PTB-XL+ publishes, for every PTB-XL record, the features of three ECG programs in one harmonised
format: ``features/12sl_features.csv`` (GE Marquette 12SL), ``features/unig_features.csv``
(University of Glasgow) and ``features/ecgdeli_features.csv`` (ECGDeli, open source), keyed by
``ecg_id``, with global measurements named ``<feature>_Global`` in ms, bpm and degrees.
:func:`reference_table` reads the columns of :data:`DEFAULT_COLUMNS` (the first present of
each list; names as used by published readers of these tables: ``HR__Global``,
``RR_Mean_Global``, ``PR_Int_Global``, ``QRS_Dur_Global``, ``QT_Int_Global``,
``QT_IntBazett_Global``, ``QT_IntFridericia_Global``, ``R_AxisFrontal_Global`` in 12SL,
``QRS_AxisFront_Global`` in Uni-G). Not every program reports every quantity: a heart rate
missing is taken as 60000 / ``RR_Mean_Global``, a QTc missing is computed from QT and RR like
:mod:`ecgprobe.data.physiology` does, and anything else missing stays NaN. Pass
``columns={quantity: column}`` where a release names them differently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_COLUMNS", "SOURCES", "reference_table"]

#: PTB-XL+ feature tables by program.
SOURCES: dict[str, str] = {
    "12sl": "12sl_features.csv",
    "unig": "unig_features.csv",
    "ecgdeli": "ecgdeli_features.csv",
}
#: Candidate columns per quantity, the first present wins.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "heart_rate": ("HR__Global", "HR_Ventr_Global"),
    "rr": ("RR_Mean_Global",),
    "pr": ("PR_Int_Global",),
    "qrs": ("QRS_Dur_Global",),
    "qt": ("QT_Int_Global",),
    "qtc_bazett": ("QT_IntBazett_Global",),
    "qtc_fridericia": ("QT_IntFridericia_Global",),
    "axis": ("R_AxisFrontal_Global", "QRS_AxisFront_Global", "QRS_AxisFrontal_Global"),
}
_KEY = "ecg_id"


def _table_path(folder: Path, source: str) -> Path:
    if source not in SOURCES:
        raise ConfigError(f"reference_source must be one of {sorted(SOURCES)}, got {source!r}")
    for cand in (folder / "features" / SOURCES[source], folder / SOURCES[source]):
        if cand.is_file():
            return cand
    raise DataError(
        f"no PTB-XL+ table {SOURCES[source]} under {folder} (looked in {folder / 'features'} and {folder}); "
        "pass the PTB-XL+ folder (the one holding features/), or another reference_source"
    )


def reference_table(
    records: RecordSet,
    folder: str | Path,
    *,
    source: str = "12sl",
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The physiology table of ``records`` (as :func:`ecgprobe.data.physiology.measure` returns)
    from a PTB-XL+ feature table instead of measuring.

    Args:
        records: PTB-XL records (record ids are ``ecg_id``).
        folder: the PTB-XL+ folder (holding ``features/``) or the ``features`` folder itself.
        source: ``"12sl"``, ``"unig"`` or ``"ecgdeli"``.
        columns: ``{quantity: column}`` overriding :data:`DEFAULT_COLUMNS`.

    Returns:
        A DataFrame indexed by record id with every quantity, ``n_beats`` and
        ``beat_correlation`` (NaN: not published), ``quality`` (``"ok"``, ``"incomplete"`` or
        ``"not_in_reference"``) and ``source`` (``"ptbxl+:<source>"``); ``attrs`` names the
        table and the column used for each quantity.

    Raises:
        ConfigError: an unknown source or quantity in ``columns``.
        DataError: the table is missing, unreadable, lacks ``ecg_id`` or a column asked for.
    """
    import pandas as pd

    from ecgprobe.data.physiology import QUANTITIES, check_quantity

    path = _table_path(Path(folder).expanduser(), source)
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the PTB-XL+ table {path}: {exc}") from exc
    if _KEY not in header:
        raise DataError(f"{path} has no {_KEY!r} column; is it a PTB-XL+ feature table?")
    chosen: dict[str, str] = {}
    for q, cands in DEFAULT_COLUMNS.items():
        hit = next((c for c in cands if c in header), None)
        if hit:
            chosen[q] = hit
    for q, col in (columns or {}).items():
        if q != "rr":
            check_quantity(q)
        if col not in header:
            raise DataError(f"columns[{q!r}] = {col!r} is not a column of {path}")
        chosen[q] = col
    try:
        table = pd.read_csv(path, usecols=[_KEY, *sorted(set(chosen.values()))])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the PTB-XL+ table {path}: {exc}") from exc
    table = table.drop_duplicates(_KEY).set_index(_KEY)
    keys = pd.to_numeric(pd.Series(list(records.ids)), errors="coerce")
    found = table.reindex(keys.to_numpy())
    out = pd.DataFrame(index=pd.Index(list(records.ids), name="id"))
    for q in ("heart_rate", "rr", "pr", "qrs", "qt", "qtc_bazett", "qtc_fridericia", "axis"):
        out[q] = pd.to_numeric(found[chosen[q]], errors="coerce").to_numpy() if q in chosen else math.nan
    rr_s = out.pop("rr") / 1000.0
    if "heart_rate" not in chosen:
        out["heart_rate"] = 60.0 / rr_s
    if "qtc_bazett" not in chosen:
        out["qtc_bazett"] = out["qt"] / np.sqrt(rr_s)
    if "qtc_fridericia" not in chosen:
        out["qtc_fridericia"] = out["qt"] / rr_s ** (1.0 / 3.0)
    out["qtc"] = out["qtc_bazett"]
    out = out[list(QUANTITIES)]
    out["n_beats"] = math.nan
    out["beat_correlation"] = math.nan
    present = keys.isin(table.index).to_numpy()
    complete = out[list(QUANTITIES)].notna().all(axis=1).to_numpy()
    out["quality"] = np.where(~present, "not_in_reference", np.where(complete, "ok", "incomplete"))
    out["source"] = f"ptbxl+:{source}"
    out.attrs.update(n_measured=0, n_cached=0, reference=str(path), columns=chosen)
    return out
