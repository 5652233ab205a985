"""Harmonised labels: one SNOMED-CT label space for PTB-XL, the Challenge sources and CODE-15 %.

Two label sets, available as ``labels=`` on the ``ptbxl``, ``challenge`` and ``code15`` loaders:

- ``scored``: the classes the PhysioNet/CinC Challenge 2021 scored (``dx_mapping_scored.csv``),
  with its four equivalence pairs scored as one class, exactly as its ``evaluate_model.py`` does
  (a class is positive when any member of its pair is): 713427006|59118001 (CRBBB|RBBB),
  284470004|63593006 (PAC|SVPB), 427172004|17338001 (PVC|VPB), 733534002|164909002
  (CLBBB|LBBB) — 26 classes from 30 codes;
- ``snomed``: every code a source's labels map to (pairs merged alike).

Label names are the SNOMED-CT codes as strings (for a pair, its first member); descriptions
carry the Challenge's abbreviation and name (``ecgprobe/data/snomed_ct.csv``), which reports show
(:func:`abbreviation`).

Sources of the mappings:

- PTB-XL: ``ecgprobe/data/ptbxl_snomed.csv``, the SCP-statement (and ``heart_axis``) to SNOMED-CT
  mapping of the Challenge's PTB-XL copy, each row naming where it comes from (the file's header
  says which repository, file, sheet and commit, and what could not be confirmed). Every
  statement of a record counts whatever its likelihood (as the PTB-XL benchmark counts them),
  unless ``min_likelihood`` says otherwise; axis deviation (LAD, RAD) and indeterminate axis come
  from the ``heart_axis`` column where it exists, as the organisers derived them.
- Challenge records: their ``# Dx:`` codes (``#Dx:`` too) are SNOMED-CT already.
- CODE-15 %: its six abnormalities by their definitions (Ribeiro et al. 2020): 1dAVb -> 1st
  degree AV block 270492004, RBBB -> 59118001, LBBB -> 164909002, SB -> sinus bradycardia
  426177001, ST -> sinus tachycardia 427084000, AF -> atrial fibrillation 164889003 (no
  Challenge release holds CODE-15 %, so there is no organisers' table to follow; the codes are
  the Challenge's own codes for these names).

A source annotates only the classes its own vocabulary can express (CODE-15 % six, PTB-XL the
codes of its statements): a class it cannot express is absent from its label table, never a
column of silent negatives; comparisons across sources use the labels present in both.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from ecgprobe.data.challenge import snomed_table
from ecgprobe.data.loading import multi_hot
from ecgprobe.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CODE15_SNOMED",
    "HARMONISED_SETS",
    "abbreviation",
    "canonical_code",
    "code15_codes",
    "describe",
    "equivalent_pairs",
    "harmonised_table",
    "ptbxl_mapping",
    "ptbxl_record_codes",
    "scored_codes",
]

#: The harmonised label sets every loader that can provide them accepts as ``labels=``.
HARMONISED_SETS: tuple[str, ...] = ("scored", "snomed")

#: ``heart_axis`` values that carry no code: MID, the normal axis.
NO_AXIS_CODE: frozenset[str] = frozenset({"MID"})

#: CODE-15 % abnormality -> SNOMED-CT code (before merging the Challenge's pairs).
CODE15_SNOMED: dict[str, str] = {
    "1dAVb": "270492004",
    "RBBB": "59118001",
    "LBBB": "164909002",
    "SB": "426177001",
    "ST": "427084000",
    "AF": "164889003",
}


def equivalent_pairs() -> dict[str, str]:
    """The Challenge's equivalence pairs: second member -> first member (the class's name)."""
    table = snomed_table()
    return {str(c): str(s) for c, s in table["same_as"].items() if s}


def canonical_code(code: str) -> str:
    """A code under its class name: the first member of its equivalence pair, else itself.

    Example:
        >>> canonical_code("59118001"), canonical_code("164889003")
        ('713427006', '164889003')
    """
    return equivalent_pairs().get(str(code), str(code))


def scored_codes() -> tuple[str, ...]:
    """The 26 classes the Challenge 2021 scored (pairs merged onto their first member)."""
    table = snomed_table()
    return tuple(sorted({canonical_code(c) for c in table.index[table["scored"]]}))


def abbreviation(code: str) -> str:
    """The Challenge's abbreviation of a code (``"713427006"`` -> ``"CRBBB"``), else the code."""
    table = snomed_table()
    return str(table.at[code, "abbreviation"]) if code in table.index else str(code)


def describe(code: str) -> str:
    """``"AF: atrial fibrillation (SNOMED-CT 164889003)"``, with the pair's second member named."""
    table = snomed_table()
    if code not in table.index:
        return f"SNOMED-CT {code}"
    also = [c for c, first in equivalent_pairs().items() if first == code]
    pair = f" = {also[0]} ({table.at[also[0], 'abbreviation']})" if also else ""
    return f"{table.at[code, 'abbreviation']}: {table.at[code, 'name']} (SNOMED-CT {code}{pair})"


@lru_cache(maxsize=1)
def ptbxl_mapping() -> pd.DataFrame:
    """The shipped PTB-XL -> SNOMED-CT table: kind, value, snomed_code, challenge_ptbxl_records,
    source (one row per SCP statement or ``heart_axis`` value; see the file's header)."""
    import pandas as pd

    text = resources.files("ecgprobe.data").joinpath("ptbxl_snomed.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    return pd.DataFrame(rows, dtype=str)


def _lookup(kind: str) -> dict[str, str]:
    df = ptbxl_mapping()
    sel = df[df["kind"] == kind]
    return dict(zip(sel["value"], sel["snomed_code"]))


def ptbxl_record_codes(
    scp_codes: Iterable[Mapping[str, float]],
    heart_axis: Iterable[object] | None = None,
    *,
    min_likelihood: float = 0.0,
) -> tuple[list[list[str]], Counter[str]]:
    """Each PTB-XL record's SNOMED-CT codes (pairs merged) and what had no code.

    Args:
        scp_codes: per record, ``{statement: likelihood}``.
        heart_axis: per record, the ``heart_axis`` value (``None``/NaN where absent); ``None``
            when the column does not exist.
        min_likelihood: statements with a lower likelihood are ignored.

    Returns:
        The sorted codes of each record, and a count of the statements (``"SCP X"``) and axis
        values (``"heart_axis X"``) without a code, to be reported.
    """
    statements, axes = _lookup("scp_statement"), _lookup("heart_axis")
    axis_values = None if heart_axis is None else list(heart_axis)
    unmapped: Counter[str] = Counter()
    out: list[list[str]] = []
    for i, codes in enumerate(scp_codes):
        got = set()
        for stmt, lik in codes.items():
            if lik < min_likelihood:
                continue
            if stmt in statements:
                got.add(canonical_code(statements[stmt]))
            else:
                unmapped[f"SCP {stmt}"] += 1
        if axis_values is not None:
            axis = axis_values[i]
            if isinstance(axis, str) and axis.strip() and axis.strip() not in NO_AXIS_CODE:
                if axis.strip() in axes:
                    got.add(canonical_code(axes[axis.strip()]))
                else:
                    unmapped[f"heart_axis {axis.strip()}"] += 1
        out.append(sorted(got))
    return out, unmapped


def code15_codes(y: np.ndarray, names: Sequence[str]) -> list[list[str]]:
    """CODE-15 %'s six abnormality flags ``(N, 6)`` (columns ``names``) as SNOMED-CT codes.

    Raises:
        DataError: a column that is not one of the six abnormalities.
    """
    unknown = [n for n in names if n not in CODE15_SNOMED]
    if unknown:
        raise DataError(f"code15: columns {unknown} have no SNOMED-CT code; only {list(CODE15_SNOMED)} do")
    codes = [canonical_code(CODE15_SNOMED[n]) for n in names]
    return [[codes[j] for j in np.flatnonzero(row)] for row in np.asarray(y).astype(bool)]


def harmonised_table(
    per_record: Sequence[Sequence[str]],
    label_set: str,
    *,
    dataset: str,
    min_count: int = 1,
    expressible: Iterable[str] | None = None,
) -> tuple[tuple[str, ...], np.ndarray, dict[str, str], list[str]]:
    """The label table of ``label_set`` from each record's (merged) SNOMED-CT codes.

    Args:
        per_record: codes per record.
        label_set: ``"scored"`` or ``"snomed"``.
        dataset: the loader's name (for the notes).
        min_count: keep labels with at least this many positive records; ``0`` also keeps the
            classes of the set the source can express (``expressible``) without a positive.
        expressible: the codes the source's vocabulary can express (default: those seen).

    Returns:
        Label names (codes, by descending count then code), the ``(N, C)`` uint8 matrix, a
        description per label, and notes naming every code left out and why.

    Raises:
        DataError: an unknown ``label_set``.
    """
    if label_set not in HARMONISED_SETS:
        raise DataError(f"{dataset}: unknown harmonised label set {label_set!r}; use {list(HARMONISED_SETS)}")
    counts = Counter(c for rec in per_record for c in set(rec))
    notes: list[str] = []
    scored = set(scored_codes())
    pool = set(counts) | set(expressible or ())
    if label_set == "scored":
        left = {c: counts[c] for c in sorted(pool - scored) if counts[c]}
        if left:
            shown = ", ".join(
                f"{c} ({abbreviation(c)}) x{k}" for c, k in sorted(left.items(), key=lambda kv: -kv[1])
            )
            notes.append(
                f"{len(left)} code(s) are not Challenge-scored classes, left out of labels=scored: {shown}"
            )
        pool &= scored
    keep = sorted((c for c in pool if counts[c] >= max(min_count, 0)), key=lambda c: (-counts[c], c))
    rare = sorted(pool - set(keep))
    if rare and min_count > 0:
        notes.append(
            f"{len(rare)} {label_set} label(s) with < {min_count} positives left out: {', '.join(rare)}"
        )
    table = snomed_table()
    unknown = [c for c in keep if c not in table.index]
    if unknown:
        notes.append(
            f"{len(unknown)} code(s) are not in the Challenge's SNOMED-CT table (named by code): {unknown}"
        )
    names = tuple(keep)
    return names, multi_hot(per_record, names), {c: describe(c) for c in names}, notes
