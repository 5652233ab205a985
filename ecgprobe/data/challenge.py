"""The PhysioNet/CinC Challenge 2020/2021 format (CPSC2018, CPSC-Extra, INCART, PTB, PTB-XL,
Georgia, Chapman-Shaoxing, Ningbo).

Each record is a WFDB header (``.hea``) plus a MATLAB v4 ``.mat`` file holding format-16 samples
behind a 24-byte header. Labels are the SNOMED-CT codes of the header's ``# Dx:`` line; age and
sex come from ``# Age:`` / ``# Sex:``. Codes are named after the Challenge's own mapping
(``ecgprobe/data/snomed_ct.csv``); the four pairs the Challenge scores as one class (e.g. RBBB
and CRBBB) are merged unless ``merge_equivalent=False``. The format carries no patient ids, so
the seeded stratified split is record-wise, as the notes say.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np

from ecgprobe.data.leads import LEADS_12, canonical_leads
from ecgprobe.data.loading import DATASETS, check_choice, check_root, finish, multi_hot
from ecgprobe.data.record import RecordSet
from ecgprobe.data.sources import FileSource, NonFinitePolicy, load_signals
from ecgprobe.data.wfdb_io import Header, read_header, wfdb_digest, wfdb_reader
from ecgprobe.exceptions import ConfigError, DataError
from ecgprobe.options import Range

if TYPE_CHECKING:  # pandas is imported where it is used (light commands stay light)
    import pandas as pd

__all__ = ["SOURCES", "load_challenge", "snomed_table"]

#: Record-name prefixes of the Challenge sources.
SOURCES = {
    "A": "CPSC2018",
    "Q": "CPSC-Extra",
    "I": "INCART",
    "S": "PTB",
    "HR": "PTB-XL",
    "E": "Georgia",
    "JS": "Chapman-Shaoxing/Ningbo",
}


@lru_cache(maxsize=1)
def snomed_table() -> pd.DataFrame:
    """The Challenge's SNOMED-CT table: code -> abbreviation, name, scored, same_as."""
    import pandas as pd

    text = resources.files("ecgprobe.data").joinpath("snomed_ct.csv").read_text(encoding="utf-8")
    rows = [r for r in csv.reader(line for line in text.splitlines() if not line.startswith("#"))]
    df = pd.DataFrame(rows[1:], columns=rows[0]).set_index("code")
    df["scored"] = df["scored"] == "1"
    return df


def _source_of(record: str) -> str:
    m = re.match(r"^([A-Z]+)", record)
    return SOURCES.get(m.group(1), "unknown") if m else "unknown"


def _parse_age(value: str | None) -> float:
    try:
        age = float(value) if value is not None else np.nan
    except ValueError:
        return np.nan
    return age if 0 <= age < 130 else np.nan


def _parse_sex(value: str | None) -> str | None:
    v = (value or "").strip().lower()
    return {"male": "male", "m": "male", "female": "female", "f": "female"}.get(v)


#: A SNOMED-CT concept id: 6 to 18 digits (the Challenge's codes are such ids).
_SNOMED_ID = re.compile(r"\d{6,18}")


def _codes(h: Header) -> list[str]:
    dx = h.comment("Dx")
    if dx is None:
        raise DataError(f"{h.path}: no '# Dx:' line; Challenge headers list SNOMED-CT codes there")
    return [c.strip() for c in dx.split(",") if c.strip() and c.strip().lower() not in ("unknown", "nan")]


def _check_codes(headers: list[Header]) -> list[list[str]]:
    """Every record's ``# Dx:`` codes, refusing values that are not SNOMED-CT ids.

    A non-numeric value (``abc``, ``<script>``) is not a diagnosis that was coded badly but a
    header that was edited or corrupted: keeping it would invent a label, and dropping it would
    silently change the label matrix, so the loader refuses and names every such record.
    Numeric codes missing from the Challenge's table are kept (named by their code).

    Raises:
        DataError: listing the records and values that are not SNOMED-CT ids.
    """
    codes = [_codes(h) for h in headers]
    bad = [(h, [c for c in cs if not _SNOMED_ID.fullmatch(c)]) for h, cs in zip(headers, codes)]
    bad = [(h, vals) for h, vals in bad if vals]
    if bad:
        shown = "; ".join(f"{h.path}: {vals}" for h, vals in bad[:5])
        raise DataError(
            f"challenge: {len(bad)} record(s) have '# Dx:' values that are not SNOMED-CT codes (6-18 digits, "
            f"e.g. 426783006): {shown}; correct those header lines (restore the files from the Challenge "
            "download) or move the records out of the folder"
        )
    return codes


@DATASETS.register(
    "challenge",
    aliases=("cinc", "cinc2021", "physionet-challenge"),
    summary="PhysioNet/CinC Challenge 2020/2021 records (*.hea + *.mat, SNOMED-CT labels)",
)
def load_challenge(
    root: str | Path,
    *,
    labels: Literal["dx", "scored", "snomed"] = "dx",
    label_style: Literal["abbreviation", "code", "name"] = "abbreviation",
    scored_only: bool = False,
    merge_equivalent: bool = True,
    min_count: Annotated[int, Range(ge=0)] = 1,
    drop_unlabeled: bool = False,
    fs: Annotated[float, Range(gt=0)] | None = None,
    length_s: Annotated[float, Range(gt=0)] | None = 10.0,
    leads: tuple[str, ...] = LEADS_12,
    fractions: Annotated[tuple[float, float, float], Range(ge=0, le=1)] = (0.8, 0.1, 0.1),
    seed: int = 0,
    lazy: bool | Literal["auto"] = "auto",
    nonfinite: NonFinitePolicy = "error",
) -> RecordSet:
    """Load every Challenge record (``*.hea``) found under ``root``, recursively.

    Args:
        root: folder holding the records (any depth, e.g. ``training/georgia/g1``).
        labels: dx (every ``# Dx:`` code, named by label_style), or the harmonised scored /
            snomed sets (SNOMED-CT codes as names, pairs merged; see ecgprobe.data.harmonise),
            which ignore label_style, scored_only and merge_equivalent.
        label_style: column names: abbreviation (``AF``), SNOMED code, or full name.
        scored_only: keep only the 30 classes the Challenge 2021 scored.
        merge_equivalent: merge the pairs the Challenge scores as one class (RBBB/CRBBB,
            LBBB/CLBBB, PAC/SVPB, PVC/VPB) onto the first of each pair.
        min_count: keep labels with at least this many positive records.
        drop_unlabeled: drop records left without any label (reported in notes).
        fs: sampling rate to use; records at other rates are resampled. ``None`` requires all
            records to share one rate (error otherwise, listing the rates found).
        length_s: record length in seconds: longer records are cropped (first ``length_s``),
            shorter ones zero-padded; counts are reported in notes. ``None`` requires equal lengths.
        leads: leads to load, in this order.
        fractions: train/val/test shares of the seeded, stratified split.
        seed: seed of the split.
        lazy: keep signals on disk and read them per batch (``"auto"``: when over 2 GiB).
        nonfinite: NaN/inf samples: ``error`` (name the records), ``drop`` or ``zero``.

    Raises:
        DataError: no records, duplicate names, records lacking the leads, rates or lengths
            that differ (each with the option that fixes it), ``# Dx:`` values that are not
            SNOMED-CT codes (refused, not dropped: naming every such record), unreadable files.
    """
    import pandas as pd

    base = check_root(root, "challenge")
    check_choice(label_style, ("abbreviation", "code", "name"), "label_style")
    headers_paths = sorted(base.rglob("*.hea"))
    if not headers_paths:
        raise DataError(f"challenge: no *.hea files found under {base}; pass the folder holding the records")
    headers = [read_header(p) for p in headers_paths]
    names = [h.record for h in headers]
    dups = [n for n, c in Counter(names).items() if c > 1]
    if dups:
        raise DataError(
            f"challenge: record names occur twice under {base}, e.g. {dups[:5]}; record ids must be unique"
        )
    want = canonical_leads(list(leads))
    lacking = [h.record for h in headers if not set(want) <= set(h.lead_names)]
    if lacking:
        shared = [lead for lead in (*want, *LEADS_12) if all(lead in h.lead_names for h in headers)]
        fix = (
            f"pass leads={','.join(dict.fromkeys(shared))} (the leads every record has)"
            if shared
            else "no lead is shared by every record; move the records without them out of the folder"
        )
        raise DataError(
            f"challenge: {len(lacking)} record(s) lack some of the leads {list(want)}, e.g. {lacking[:5]}; {fix}"
        )
    rates = Counter(h.fs for h in headers)
    if fs is None and len(rates) > 1:
        common_fs = rates.most_common(1)[0][0]
        raise DataError(
            f"challenge: records have different sampling rates {dict(rates)}; pass fs={common_fs:g} "
            "(or another rate in Hz) to resample all to one rate"
        )
    target_fs = float(fs) if fs is not None else float(headers[0].fs)
    lengths = np.array([h.n_samples / h.fs for h in headers])
    notes: list[str] = ["the Challenge format has no patient ids: the split is record-wise"]
    if length_s is None:
        if len(set(np.round(lengths, 6))) > 1:
            raise DataError(
                f"challenge: records have different lengths (from {lengths.min():g} to {lengths.max():g} s); "
                f"pass length_s={Counter(np.round(lengths, 3).tolist()).most_common(1)[0][0]:g} "
                "(or another length in seconds) to crop/pad them to one length"
            )
        length_s = float(lengths[0])
    n_samples = int(round(length_s * target_fs))
    n_crop, n_pad = int((lengths > length_s + 1e-9).sum()), int((lengths < length_s - 1e-9).sum())
    if n_crop:
        notes.append(f"cropped {n_crop} record(s) longer than {length_s:g} s to their first {length_s:g} s")
    if n_pad:
        notes.append(f"zero-padded {n_pad} record(s) shorter than {length_s:g} s")
    if rates.get(target_fs, 0) != len(headers):
        notes.append(f"resampled {len(headers) - rates.get(target_fs, 0)} record(s) to {target_fs:g} Hz")

    table = snomed_table()
    check_choice(labels, ("dx", "scored", "snomed"), "labels")
    if labels != "dx":
        if scored_only or not merge_equivalent:
            raise ConfigError(
                f"challenge: labels={labels!r} merges the Challenge's pairs and selects its own classes; "
                "drop scored_only / merge_equivalent=False (they apply to labels='dx')"
            )
        label_style, scored_only = "code", labels == "scored"
    per_record = []
    for codes in _check_codes(headers):
        if merge_equivalent:
            codes = [table.at[c, "same_as"] or c if c in table.index else c for c in codes]
        if scored_only:
            codes = [c for c in codes if c in table.index and table.at[c, "scored"]]
        per_record.append(sorted(set(codes)))
    counts = Counter(c for rec in per_record for c in rec)
    if labels != "dx":
        from ecgprobe.data import harmonise  # the harmonised sets build on this module's table

        every = [sorted(set(map(harmonise.canonical_code, _codes(h)))) for h in headers]
        vocab, y, _, label_notes = harmonise.harmonised_table(
            every, labels, dataset="challenge", min_count=max(min_count, 1)
        )
        notes += label_notes
        vocab = list(vocab)
    else:
        vocab = sorted(
            (c for c, k in counts.items() if k >= max(min_count, 1)), key=lambda c: (-counts[c], c)
        )
        if len(vocab) < len(counts):
            notes.append(f"{len(counts) - len(vocab)} code(s) with < {min_count} positives left out")
        y = multi_hot(per_record, vocab)

    def label_name(code: str) -> str:
        if label_style == "code" or code not in table.index:
            return code
        return str(table.at[code, "abbreviation" if label_style == "abbreviation" else "name"])

    label_names = tuple(label_name(c) for c in vocab)
    if len(set(label_names)) != len(label_names):
        raise ConfigError("challenge: two codes share a label name; use label_style='code'")
    descriptions = {
        label_name(c): (f"{table.at[c, 'name']} (SNOMED-CT {c})" if c in table.index else f"SNOMED-CT {c}")
        for c in vocab
    }
    if labels != "dx":
        from ecgprobe.data import harmonise

        descriptions = {c: harmonise.describe(c) for c in vocab}

    keep = np.ones(len(headers), dtype=bool)
    if drop_unlabeled:
        keep = y.sum(axis=1) > 0
        if (~keep).any():
            notes.append(f"dropped {int((~keep).sum())} record(s) without any kept label")
    kept = [h for h, k in zip(headers, keep) if k]
    ids = np.asarray([h.record for h in kept], dtype=object)
    source = FileSource(
        [str(h.path) for h in kept],
        wfdb_reader,
        digest=wfdb_digest,
        leads=want,
        fs=target_fs,
        n_samples=n_samples,
        resample=fs is not None,
        fit=True,
        nonfinite=nonfinite,
    )
    signals = load_signals(source, lazy=lazy, nonfinite=nonfinite, ids=ids)
    meta = pd.DataFrame(
        {
            "age": [_parse_age(h.comment("Age")) for h in kept],
            "sex": [_parse_sex(h.comment("Sex")) for h in kept],
            "source": [_source_of(h.record) for h in kept],
            "fs_original": [h.fs for h in kept],
            "duration_original_s": [h.n_samples / h.fs for h in kept],
            "dx_codes": [",".join(_codes(h)) for h in kept],
        }
    )
    rs = finish(
        signals,
        fs=target_fs,
        leads=want,
        ids=ids,
        patient_ids=ids.copy(),
        label_names=label_names,
        y=y[keep],
        meta=meta,
        name="challenge",
        params={
            "root": str(base),
            "label_style": label_style,
            "scored_only": scored_only,
            "merge_equivalent": merge_equivalent,
            "min_count": min_count,
            "drop_unlabeled": drop_unlabeled,
            "fs": fs,
            "length_s": length_s,
            "leads": list(want),
            "nonfinite": nonfinite,
            **({"labels": labels} if labels != "dx" else {}),  # the default keeps earlier identities
        },
        notes=notes,
        fractions=fractions,
        seed=seed,
    )
    return rs.with_descriptions(descriptions)
