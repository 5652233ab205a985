"""Physiology targets: heart rate, PR, QRS, QT, QTc and the frontal QRS axis of every record.

:func:`measure` returns one row per record (indexed by record id) with the columns of
:data:`QUANTITIES` plus quality columns. Delineation is NeuroKit2's (Makowski et al. 2021), not
a home-made one; per record:

1. lead II (else the first lead) is cleaned (``nk.ecg_clean``) and its R peaks found
   (``nk.ecg_peaks``); ``heart_rate`` = 60 / mean RR (bpm);
2. the cleaned lead II is delineated by ``nk.ecg_delineate(method="prominence")`` (Emrich et
   al. 2023): ``pr`` = QRS onset - P onset, ``qrs`` = QRS offset - QRS onset, ``qt`` = T
   offset - QRS onset (ms; each the median over the beats that were delineated). Why this
   method: on PTB-XL it gives QRS durations near the published ones (80 ms median on the mini
   set) where NeuroKit2's DWT delineator measures 170-220 ms, and it is the fastest of its
   delineators (``benchmarks/bench_physiology.py`` compares with ``nk.ecg_process``);
3. every beat ``[R - 0.4 RR, R + 0.6 RR)`` (RR the median RR, so each window spans one cycle) is
   cut from leads II (cleaned), I and aVF and the **median beat** of each lead is taken; the
   ``beat_correlation`` (mean Pearson correlation of each lead-II beat with its median beat) is
   the record's quality figure;
4. ``qtc_bazett`` = QT / sqrt(RR) and ``qtc_fridericia`` = QT / RR^(1/3) (RR in s, the median
   RR); ``qtc`` is the Bazett value;
5. ``axis`` (degrees, -180..180) from the net QRS amplitudes (maximum + minimum, relative to
   the QRS onset level) of the median beats in I and aVF between QRS onset and offset (±60 ms
   around R when the QRS was not delineated): ``atan2(2 aVF / sqrt(3), I)``, the factor
   because aVF measures sqrt(3)/2 of the vertical component on Einthoven's triangle. aVF is
   derived as II - I/2 when the record has no aVF; NaN without I.

Values outside physiological bounds (:data:`PLAUSIBLE`) are set to NaN and the record's
``quality`` says ``"incomplete"``; ``"ok"`` needs every quantity and ``beat_correlation`` >= 0.7
(else ``"noisy"``); ``"undelineated"`` records have fewer than 3 beats or failed delineation.

Measurements are cached by record content (:meth:`RecordSet.content_digests` with the sampling
rate, leads, length and method version) as one small JSON per record under
``<cache_dir>/physiology/``, and in memory for the process; a second call reads them instead of
delineating again (``df.attrs`` counts what was measured and what was reused).

Where a PTB-XL+ folder is given (``reference=``), its published feature tables are used as the
reference values instead (:mod:`ecgprobe.data.ptbxl_plus`), and the result's ``source`` column
says which.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgprobe._io import atomic_write
from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import ConfigError, DependencyError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "METHOD_VERSION",
    "PLAUSIBLE",
    "QUANTITIES",
    "QUANTITY_UNITS",
    "check_quantity",
    "clear_memory",
    "measure",
    "measure_signal",
    "with_physiology_target",
]

#: The regression targets this module measures (``probe --target NAME``).
QUANTITIES: tuple[str, ...] = ("heart_rate", "pr", "qrs", "qt", "qtc", "qtc_bazett", "qtc_fridericia", "axis")
#: Units of each quantity, for tables and axes.
QUANTITY_UNITS: dict[str, str] = {
    "heart_rate": "bpm",
    **{q: "ms" for q in ("pr", "qrs", "qt", "qtc", "qtc_bazett", "qtc_fridericia")},
    "axis": "degrees",
}
#: Physiological bounds (inclusive); measurements outside are delineation failures, set to NaN.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "heart_rate": (20.0, 300.0),
    "pr": (50.0, 450.0),
    "qrs": (30.0, 250.0),
    "qt": (150.0, 750.0),
}
#: Bump when a change here changes the numbers (invalidates cached measurements).
METHOD_VERSION = "1"
_INSTALL = 'physiology measurements need NeuroKit2: pip install "ecgprobe[physiology]"'
_MIN_BEATS = 3
_MIN_CORRELATION = 0.7
_COLUMNS = (*QUANTITIES, "n_beats", "beat_correlation", "quality", "source")
#: Measurements of this process by record key (a second call on the same records, e.g. from
#: another analysis or layer, is free even without a cache folder).
_MEMORY: dict[str, dict[str, Any]] = {}
_MEMORY_SIZE = 200_000


def _neurokit() -> Any:
    try:
        import neurokit2 as nk
    except ImportError:
        raise DependencyError(_INSTALL) from None
    return nk


def _empty(n_beats: int = 0, correlation: float = math.nan) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(QUANTITIES, math.nan)
    row.update(n_beats=n_beats, beat_correlation=correlation, quality="undelineated", source="neurokit2")
    return row


def _median_beats(clean: np.ndarray, rpeaks: np.ndarray, pre: int, post: int) -> tuple[np.ndarray, float]:
    """Median beat ``(L, pre + post)`` of each cleaned lead and the lead-0 beat correlation."""
    keep = rpeaks[(rpeaks - pre >= 0) & (rpeaks + post <= clean.shape[-1])]
    idx = keep[:, None] + np.arange(-pre, post)[None, :]
    beats = clean[:, idx]  # (L, K, W)
    template = np.median(beats, axis=1)
    b0 = beats[0] - beats[0].mean(1, keepdims=True)
    t0 = template[0] - template[0].mean()
    denom = np.linalg.norm(b0, axis=1) * np.linalg.norm(t0)
    corr = float(np.mean(b0 @ t0 / np.where(denom > 0, denom, np.inf))) if len(keep) else math.nan
    return template, corr


def _fiducials(nk: Any, clean: np.ndarray, rpeaks: np.ndarray, fs: float) -> dict[str, float]:
    """Median offsets from R (samples) of P onset, QRS onset and offset and T offset, over beats."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, waves = nk.ecg_delineate(clean, rpeaks, sampling_rate=int(round(fs)), method="prominence")
    out = {}
    for key, name in (
        ("ECG_P_Onsets", "p_on"),
        ("ECG_R_Onsets", "qrs_on"),
        ("ECG_R_Offsets", "qrs_off"),
        ("ECG_T_Offsets", "t_off"),
    ):
        vals = np.asarray(waves.get(key, []), dtype=np.float64)
        rel = vals[: len(rpeaks)] - rpeaks[: len(vals)]  # NeuroKit2 gives one entry per R peak (NaN: missed)
        rel = rel[np.isfinite(rel)]
        out[name] = float(np.median(rel)) if len(rel) else math.nan
    return out


def _net_qrs(beat: np.ndarray, lo: int, hi: int) -> float:
    seg = beat[lo : hi + 1] - beat[lo]
    return float(seg.max() + seg.min()) if len(seg) else math.nan


def _plausible(name: str, value: float) -> float:
    lo, hi = PLAUSIBLE.get(name, (-math.inf, math.inf))
    return value if (math.isfinite(value) and lo <= value <= hi) else math.nan


def measure_signal(signal: np.ndarray, fs: float, leads: Sequence[str]) -> dict[str, Any]:
    """The physiology row of one record ``(n_leads, T)`` in mV (see the module docstring).

    Args:
        signal: the record's samples, leads first.
        fs: sampling rate in Hz.
        leads: canonical lead names of the rows.

    Returns:
        ``{quantity: value}`` for every name of :data:`QUANTITIES`, plus ``n_beats``,
        ``beat_correlation``, ``quality`` and ``source``.

    Raises:
        DependencyError: NeuroKit2 is not installed.
    """
    nk = _neurokit()
    leads = list(leads)
    main = leads.index("II") if "II" in leads else 0
    x = np.asarray(signal, dtype=np.float64)
    if not np.isfinite(x[main]).all() or np.ptp(x[main]) < 1e-3:
        return _empty()
    rate = int(round(fs))
    wanted = [main] + [leads.index(name) for name in ("I", "aVF") if name in leads]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # only lead II is cleaned: the axis reads I and aVF relative to their own QRS-onset level
        clean = np.nan_to_num(x[wanted])
        clean[0] = nk.ecg_clean(clean[0], sampling_rate=rate)
        try:
            _, info = nk.ecg_peaks(clean[0], sampling_rate=rate)
        except (ValueError, IndexError):  # NeuroKit2 fails this way on signals without beats
            return _empty()
    rpeaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    if len(rpeaks) < _MIN_BEATS:
        return _empty(len(rpeaks))
    rr = np.diff(rpeaks) / fs
    rr_med = float(np.median(rr))
    pre, post = int(round(0.4 * rr_med * fs)), int(round(0.6 * rr_med * fs))
    template, corr = _median_beats(clean, rpeaks, pre, post)
    row = _empty(len(rpeaks), corr)
    row["heart_rate"] = _plausible("heart_rate", 60.0 / float(np.mean(rr)))
    try:
        fid = _fiducials(nk, clean[0], rpeaks, fs)
    except (ValueError, IndexError, ZeroDivisionError):  # NeuroKit2 on beats it cannot delineate
        fid = dict.fromkeys(("p_on", "qrs_on", "qrs_off", "t_off"), math.nan)
    ms = 1000.0 / fs
    row["pr"] = _plausible("pr", (fid["qrs_on"] - fid["p_on"]) * ms)
    row["qrs"] = _plausible("qrs", (fid["qrs_off"] - fid["qrs_on"]) * ms)
    row["qt"] = _plausible("qt", (fid["t_off"] - fid["qrs_on"]) * ms)
    row["qtc_bazett"] = row["qt"] / math.sqrt(rr_med)
    row["qtc_fridericia"] = row["qt"] / rr_med ** (1.0 / 3.0)
    row["qtc"] = row["qtc_bazett"]
    row["axis"] = _axis(leads, wanted, template, pre, fid, fs)
    complete = all(math.isfinite(row[q]) for q in QUANTITIES)
    row["quality"] = "incomplete" if not complete else ("ok" if corr >= _MIN_CORRELATION else "noisy")
    return row


def _axis(leads: list[str], wanted: list[int], template: np.ndarray, pre: int, fid: dict, fs: float) -> float:
    if "I" not in leads:
        return math.nan
    by_name = {leads[i]: template[k] for k, i in enumerate(wanted)}
    beat_i = by_name["I"]
    beat_avf = by_name.get("aVF", by_name.get("II", beat_i) - beat_i / 2.0)
    on, off = fid["qrs_on"], fid["qrs_off"]
    if not (math.isfinite(on) and math.isfinite(off) and off > on):
        on, off = -0.06 * fs, 0.06 * fs
    lo, hi = max(pre + int(round(on)), 0), min(pre + int(round(off)), len(beat_i) - 1)
    net_i, net_avf = _net_qrs(beat_i, lo, hi), _net_qrs(beat_avf, lo, hi)
    if not (math.isfinite(net_i) and math.isfinite(net_avf)) or (net_i == 0 and net_avf == 0):
        return math.nan
    return float(np.degrees(np.arctan2(2.0 * net_avf / math.sqrt(3.0), net_i)))


# ----------------------------------------------------------------------------- cache
def _record_keys(records: RecordSet) -> list[str]:
    """One cache key per record: its content digest with everything else that sets the numbers."""
    try:
        nk_version = metadata.version("neurokit2")
    except metadata.PackageNotFoundError:
        nk_version = "absent"
    context = json.dumps(
        {
            "method": METHOD_VERSION,
            "neurokit2": nk_version,
            "fs": records.fs,
            "leads": list(records.leads),
            "n_samples": records.n_samples,
        },
        sort_keys=True,
    )
    return [
        hashlib.sha256(f"{context}\n{digest}".encode()).hexdigest() for digest in records.content_digests()
    ]


def _remember(key: str, row: dict[str, Any]) -> None:
    if len(_MEMORY) >= _MEMORY_SIZE:
        _MEMORY.pop(next(iter(_MEMORY)))  # the oldest first
    _MEMORY[key] = dict(row)


def clear_memory() -> None:
    """Forget the measurements kept in memory (this process's cache beside ``cache_dir``)."""
    _MEMORY.clear()


def _cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "physiology" / key[:2] / f"{key}.json"


def _read_cached(path: Path) -> dict[str, Any] | None:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: measured again (and rewritten)
    if not isinstance(row, dict) or set(row) != set(_COLUMNS):
        return None
    return {k: (math.nan if v is None else v) for k, v in row.items()}


def _write_cached(path: Path, row: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    atomic_write(path, json.dumps(doc, sort_keys=True).encode())


# ----------------------------------------------------------------------------- public API
def measure(
    records: RecordSet,
    *,
    cache_dir: str | Path | None = None,
    reference: str | Path | None = None,
    reference_source: str = "12sl",
    reference_columns: Mapping[str, str] | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> pd.DataFrame:
    """Physiology measurements of every record (see the module docstring for the method).

    Args:
        records: the records (any loader; at least one lead, ideally I, II and aVF).
        cache_dir: where measurements are cached by record content (``None``: no cache).
        reference: a PTB-XL+ folder (holding ``features/12sl_features.csv``, ...): its
            published values are used instead of measuring (records are matched by
            ``ecg_id``; records it lacks get NaN and ``quality="not_in_reference"``).
        reference_source: ``"12sl"``, ``"unig"`` or ``"ecgdeli"`` (which PTB-XL+ table).
        reference_columns: ``{quantity: column}`` overriding the PTB-XL+ column names.
        batch_size: records read from disk at once.
        progress: show a progress bar on stderr.

    Returns:
        A DataFrame indexed by record id (the records' order) with the columns of
        :data:`QUANTITIES` (NaN where a record could not be delineated), ``n_beats``,
        ``beat_correlation``, ``quality`` and ``source`` (``"neurokit2"`` or ``"ptbxl+:12sl"``).
        ``df.attrs`` holds ``n_measured`` and ``n_cached`` (what the cache reused).

    Raises:
        DependencyError: NeuroKit2 is not installed (and no ``reference`` is given).
        ConfigError: a bad ``batch_size`` or ``reference_source``.
        DataError: an unreadable record or reference table (named).

    Example:
        >>> rs = ecgprobe.load_dataset("synthetic", n_records=8, seed=0)  # doctest: +SKIP
        >>> measure(rs)[["heart_rate", "qrs", "qtc"]].round(0)  # doctest: +SKIP
    """
    import pandas as pd

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if reference is not None:
        from ecgprobe.data.ptbxl_plus import reference_table

        return reference_table(records, reference, source=reference_source, columns=reference_columns)
    root = None if cache_dir is None else Path(cache_dir).expanduser()
    keys = _record_keys(records)
    rows = [_MEMORY.get(k) for k in keys]
    if root is not None:
        rows = [r if r is not None else _read_cached(_cache_path(root, k)) for r, k in zip(rows, keys)]
    todo = np.asarray([i for i, r in enumerate(rows) if r is None], dtype=np.int64)
    if len(todo):
        _neurokit()  # fail before any work when it is missing
    bar = _bar(len(todo), progress)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        signals = records.read(chunk)
        for i, sig in zip(chunk, signals):
            row = measure_signal(sig, records.fs, records.leads)
            rows[int(i)] = row
            _remember(keys[int(i)], row)
            if root is not None:
                _write_cached(_cache_path(root, keys[int(i)]), row)
        bar.update(len(chunk))
    bar.close()
    df = pd.DataFrame(rows, index=pd.Index(list(records.ids), name="id"), columns=list(_COLUMNS))
    df.attrs.update(n_measured=len(todo), n_cached=len(records) - len(todo))
    return df


def _bar(total: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc="physiology", unit="record", disable=not progress or total == 0, leave=False
    )


def with_physiology_target(
    records: RecordSet,
    name: str,
    *,
    cache_dir: str | Path | None = None,
    reference: str | Path | None = None,
    reference_source: str = "12sl",
    table: pd.DataFrame | None = None,
) -> RecordSet:
    """``records`` with the physiology quantity ``name`` as its single regression target
    (like :meth:`RecordSet.with_meta_target`); records without a value keep NaN (probes drop
    them and say so).

    Args:
        records: the records.
        name: one of :data:`QUANTITIES`.
        cache_dir: measurement cache (see :func:`measure`).
        reference: a PTB-XL+ folder whose published values to use (see :func:`measure`).
        reference_source: which PTB-XL+ table.
        table: measurements already made (:func:`measure`'s output), to skip measuring.

    Raises:
        ConfigError: an unknown quantity (naming the known ones).

    Example:
        >>> hr = with_physiology_target(records, "heart_rate", cache_dir="~/.cache/ecgprobe")  # doctest: +SKIP
        >>> LinearProbe().run(emb, hr).metrics["r2"]  # doctest: +SKIP
    """
    check_quantity(name)
    if table is None:
        table = measure(records, cache_dir=cache_dir, reference=reference, reference_source=reference_source)
    values = table[name].reindex(list(records.ids)).to_numpy(dtype=np.float32)
    out = records.with_labels((name,), values[:, None], "regression")
    return out.with_descriptions({name: f"{name} ({QUANTITY_UNITS[name]}), {_source_of(table)}"})


def _source_of(table: pd.DataFrame) -> str:
    sources = sorted({str(s) for s in table["source"].dropna()}) if "source" in table else []
    return "measured by " + (", ".join(sources) or "neurokit2")


def check_quantity(name: str) -> str:
    """``name`` if it is one of :data:`QUANTITIES`.

    Raises:
        ConfigError: naming the known quantities.
    """
    if name not in QUANTITIES:
        raise ConfigError(f"unknown physiology quantity {name!r}; use one of {', '.join(QUANTITIES)}")
    return name
