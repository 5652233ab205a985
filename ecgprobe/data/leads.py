"""Canonical 12-lead names, their aliases, and the Einthoven/Goldberger derivations.

Canonical order: I, II, III, aVR, aVL, aVF, V1, ..., V6. Names found in files (``AVR``, ``avr``,
``MLII``, ``Lead I``, ``v1``) are mapped onto these; anything unknown is kept verbatim and
refused later by whoever needs a standard lead.
"""

from __future__ import annotations

import re

import numpy as np

from ecgprobe.exceptions import DataError

__all__ = [
    "DERIVABLE",
    "LEADS_8",
    "LEADS_12",
    "canonical_lead",
    "canonical_leads",
    "derive_limb_leads",
]

LEADS_12: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: The eight independent leads: the other four limb leads are linear combinations of I and II.
LEADS_8: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: Limb leads computable from I and II (Einthoven's law and Goldberger's augmented leads).
DERIVABLE: tuple[str, ...] = ("III", "aVR", "aVL", "aVF")

_CANON = {name.lower(): name for name in LEADS_12}
_ALIASES = {"mlii": "II", "mli": "I", "mliii": "III", "d1": "I", "d2": "II", "d3": "III"}


def canonical_lead(name: str) -> str:
    """Map a lead name as written in a file onto its canonical spelling.

    ``"AVR"``, ``"avr"``, ``"Lead aVR"`` -> ``"aVR"``; ``"v1"`` -> ``"V1"``; ``"MLII"`` -> ``"II"``.
    Unknown names are returned stripped but otherwise unchanged.
    """
    raw = str(name).strip()
    key = re.sub(r"^(lead|ecg)[\s_-]*", "", raw.lower()).replace(" ", "").replace("_", "")
    if key in _CANON:
        return _CANON[key]
    return _ALIASES.get(key, raw)


def canonical_leads(names: list[str] | tuple[str, ...], *, where: str = "") -> tuple[str, ...]:
    """Canonicalise a list of lead names; duplicates after mapping are an error.

    Raises:
        DataError: when two names map onto the same lead (e.g. ``"AVR"`` and ``"aVR"``).
    """
    out = tuple(canonical_lead(n) for n in names)
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise DataError(
            f"{where + ': ' if where else ''}lead names {list(names)} map to duplicate leads {dup}; "
            "each lead must appear once (rename the channels in the header or file)"
        )
    return out


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """Derive III, aVR, aVL and aVF from leads I and II.

    Einthoven: ``III = II - I``. Goldberger: ``aVR = -(I + II) / 2``, ``aVL = I - II / 2``,
    ``aVF = II - I / 2``. Exact for any recording whose limb leads were measured together.
    """
    return {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2.0,
        "aVL": lead_i - lead_ii / 2.0,
        "aVF": lead_ii - lead_i / 2.0,
    }
