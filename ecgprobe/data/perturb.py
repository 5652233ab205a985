"""Perturbations of ECG records for the robustness card: additive noise at a stated SNR, reduced
lead sets, sampling-rate round trips and amplitude scaling, seeded and applied lazily per record.

A :class:`Perturbation` names one condition; :func:`perturbed_view` shows a RecordSet through it
(a :class:`PerturbedSource` perturbs records as they are read, and the view's ``params`` carry
the perturbation, its seed and the noise source, so perturbed embeddings are cached under their
own key). Noise, its SNR (as the MIT-BIH noise stress test defines it) and the NST noise records
are in :mod:`ecgprobe.data.noise`.

Each record's noise comes from its own generator seeded by (seed, perturbation kind, record id),
so a record's perturbed signal does not depend on the batch it is read in, and the same noise
waveform is scaled for every SNR level (levels differ only in the gain, as in the NST).

**Lead sets** keep the named leads. Where the encoder's contract needs leads that are gone, III,
aVR, aVL and aVF are derived from I and II when both are kept (the extractor does that), and any
other missing lead is zero-filled; with nothing to fill the other leads are simply dropped
(:func:`lead_plan` states which). **Round trips** resample to the intermediate rate and back
with :func:`ecgprobe.data.preprocess.resample` (polyphase, Kaiser window), then crop to the
original length. **Amplitude scaling** multiplies every sample by the factor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ecgprobe.data.leads import DERIVABLE, LEADS_12, canonical_leads
from ecgprobe.data.noise import (
    NOISE_KINDS,
    NST_RECORDS,
    NoiseBank,
    check_mains,
    generate_noise,
    noise_power,
    noise_rng,
    qrs_power,
)
from ecgprobe.data.record import RecordSet, SignalSource, content_digest
from ecgprobe.exceptions import ConfigError

__all__ = [
    "FAMILIES",
    "LEAD_SETS",
    "LeadPlan",
    "PerturbMemo",
    "Perturbation",
    "PerturbedSource",
    "lead_plan",
    "lead_set",
    "perturb",
    "perturbed_view",
]

#: Named reduced lead sets, from the full 12 leads down to lead I alone.
LEAD_SETS: dict[str, tuple[str, ...]] = {
    "12": LEADS_12,
    "6-limb": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "I,II,V2": ("I", "II", "V2"),
    "I": ("I",),
}
#: Perturbation kinds by family.
FAMILIES: dict[str, tuple[str, ...]] = {
    "noise": NOISE_KINDS,
    "leads": ("leads",),
    "resample": ("resample",),
    "amplitude": ("amplitude",),
}


@dataclass(frozen=True)
class Perturbation:
    """One condition of the robustness card.

    Attributes:
        kind: a noise type of :data:`NOISE_KINDS`, ``"leads"``, ``"resample"`` or ``"amplitude"``.
        level: the SNR in dB (noise), a lead set (a name of :data:`LEAD_SETS` or ``"I,aVF"``),
            the intermediate sampling rate of a round trip in Hz, or an amplitude factor.
        seed: seed of the noise (with the record id; unused by the deterministic kinds).
        mains_hz: the mains frequency of ``kind="mains"``.

    Raises:
        ConfigError: an unknown kind or a level that does not fit it.

    Example:
        >>> Perturbation("muscle", 6).label
        'muscle 6 dB'
    """

    kind: str
    level: float | str
    seed: int = 0
    mains_hz: float = 50.0

    def __post_init__(self) -> None:
        known = [k for ks in FAMILIES.values() for k in ks]
        if self.kind not in known:
            raise ConfigError(f"unknown perturbation {self.kind!r}; use one of {known}")
        if self.kind == "leads":
            text = str(self.level).strip()
            object.__setattr__(self, "level", text if text in LEAD_SETS else ",".join(lead_set(text)))
            return
        try:
            value = float(self.level)
        except (TypeError, ValueError):
            raise ConfigError(
                f"perturbation {self.kind!r} needs a number as level, got {self.level!r}"
            ) from None
        if not np.isfinite(value) or (self.kind in ("resample", "amplitude") and value <= 0):
            raise ConfigError(
                f"perturbation {self.kind!r}: level must be a finite (positive) number, got {self.level!r}"
            )
        object.__setattr__(self, "level", value)
        if self.kind == "mains" and self.mains_hz not in (50.0, 60.0):
            raise ConfigError(f"mains_hz must be 50 or 60, got {self.mains_hz!r}")

    @property
    def family(self) -> str:
        """``"noise"``, ``"leads"``, ``"resample"`` or ``"amplitude"``."""
        return next(f for f, kinds in FAMILIES.items() if self.kind in kinds)

    @property
    def label(self) -> str:
        """``"muscle 6 dB"``, ``"leads I,II,V2"``, ``"resample via 250 Hz"``, ``"amplitude x0.5"``."""
        if self.family == "noise":
            return f"{self.kind.replace('_', ' ')} {self.level:g} dB"
        if self.kind == "leads":
            return f"leads {self.level}"
        if self.kind == "resample":
            return f"resample via {self.level:g} Hz"
        return f"amplitude x{self.level:g}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: part of the perturbed records' identity, hence of the cache key (the seed
        only for noise)."""
        d: dict[str, Any] = {"kind": self.kind, "level": self.level}
        if self.family == "noise":  # the other kinds are deterministic: their seed changes nothing
            d["seed"] = int(self.seed)
        if self.kind == "mains":
            d["mains_hz"] = self.mains_hz
        return d


def lead_set(value: Any) -> tuple[str, ...]:
    """A lead set from a name of :data:`LEAD_SETS` or a comma list of lead names.

    Raises:
        ConfigError: an empty set.
    """
    text = str(value).strip()
    if text in LEAD_SETS:
        return LEAD_SETS[text]
    names = [n for n in text.replace(" ", "").split(",") if n]
    if not names:
        raise ConfigError(
            f"lead set {value!r} is empty; use one of {list(LEAD_SETS)} or leads like 'I,II,V2'"
        )
    return canonical_leads(names, where="lead set")


# --------------------------------------------------------------------------- lead sets
@dataclass(frozen=True)
class LeadPlan:
    """How a lead set meets an encoder's contract.

    Attributes:
        kept: the leads kept (record order).
        zero_filled: needed leads that are gone and cannot be derived: all-zero signals.
        derived: needed limb leads the extractor derives from the kept I and II.
        dropped: record leads that are gone and not needed (or no contract was given).
    """

    kept: tuple[str, ...]
    zero_filled: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @property
    def leads_out(self) -> tuple[str, ...]:
        """The perturbed records' leads: the kept ones, then the zero-filled ones."""
        return self.kept + self.zero_filled

    @property
    def handling(self) -> str:
        """``"zero-filled"`` when any lead is filled with zeros, else ``"dropped"``."""
        return "zero-filled" if self.zero_filled else "dropped"

    def describe(self) -> str:
        """``"kept I, II, V2; zero-filled V1, V3, ...; derived from I and II: III, ..."``."""
        parts = [f"kept {', '.join(self.kept)}"]
        if self.zero_filled:
            parts.append(f"zero-filled {', '.join(self.zero_filled)}")
        if self.derived:
            parts.append(f"derived from I and II: {', '.join(self.derived)}")
        if self.dropped:
            parts.append(f"dropped {', '.join(self.dropped)}")
        return "; ".join(parts)


def lead_plan(record_leads: Sequence[str], keep: Any, required: Sequence[str] | None = None) -> LeadPlan:
    """What keeping lead set ``keep`` of ``record_leads`` means for an encoder needing ``required``.

    Raises:
        ConfigError: the set names a lead the records do not have.
    """
    wanted = set(lead_set(keep))
    missing = sorted(wanted - set(record_leads))
    if missing:
        raise ConfigError(
            f"lead set {keep!r} names leads {missing} the records do not have ({list(record_leads)})"
        )
    kept = tuple(lead for lead in record_leads if lead in wanted)
    need = list(required) if required is not None else list(kept)
    can_derive = "I" in wanted and "II" in wanted
    derived = tuple(lead for lead in need if lead not in wanted and can_derive and lead in DERIVABLE)
    zero = tuple(lead for lead in need if lead not in wanted and lead not in derived)
    dropped = tuple(lead for lead in record_leads if lead not in wanted and lead not in need)
    return LeadPlan(kept, zero, derived, dropped)


# ------------------------------------------------------------------------ application
class PerturbMemo:
    """What the conditions of one card share, by record id (ids must identify the records: one
    dataset, unchanged): each clean record's QRS size (:func:`~ecgprobe.data.noise.qrs_power`),
    so beats are detected once per record, and the unit-power noise waveform of each record for
    the noise source last used, so that the six SNR levels of one noise type generate it once
    (up to ``max_bytes``; beyond that it is generated again, with the same result).
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.sizes: dict[str, np.ndarray] = {}
        self.noise: dict[str, np.ndarray] = {}
        self.noise_key: str | None = None
        self.max_bytes = int(max_bytes)
        self._bytes = 0

    def noise_for(self, key: str) -> dict[str, np.ndarray]:
        """The stored waveforms of noise source ``key`` (another key forgets the previous ones)."""
        if key != self.noise_key:
            self.noise, self.noise_key, self._bytes = {}, key, 0
        return self.noise

    def keep(self, rid: str, wave: np.ndarray) -> None:
        """Store one record's unit noise while the budget allows."""
        if self._bytes + wave.nbytes <= self.max_bytes:
            self.noise[rid] = wave
            self._bytes += wave.nbytes


def perturb(
    x: np.ndarray,
    fs: float,
    leads: Sequence[str],
    pert: Perturbation,
    ids: Sequence[str],
    *,
    plan: LeadPlan | None = None,
    bank: NoiseBank | None = None,
    memo: PerturbMemo | None = None,
) -> np.ndarray:
    """Apply ``pert`` to a batch ``(B, L, T)`` mV of records ``ids`` (their seeds); returns float32.

    Lead sets return ``plan.leads_out`` leads (default plan: no contract, other leads dropped).
    Noise is each record's waveform scaled to unit NST noise power, times
    ``sqrt(S / 10**(SNR/10))`` per lead, so that ``10 log10(S / N) = SNR`` (a lead without QRS
    gets no noise);
    ``memo`` shares QRS sizes and waveforms between the conditions of one card.

    Raises:
        IncompatibleInputError: mains interference the sampling rate cannot hold.
    """
    from ecgprobe.data import preprocess as pp

    x = np.asarray(x, dtype=np.float32)
    if pert.kind == "amplitude":
        return x * np.float32(pert.level)
    if pert.kind == "resample":
        y = pp.resample(pp.resample(x, fs, float(pert.level)), float(pert.level), fs)
        return pp.fit_length(y, x.shape[-1])
    if pert.kind == "leads":
        plan = plan or lead_plan(leads, pert.level)
        pos = {lead: i for i, lead in enumerate(leads)}
        out = np.zeros((x.shape[0], len(plan.leads_out), x.shape[-1]), dtype=np.float32)
        for j, lead in enumerate(plan.kept):
            out[:, j] = x[:, pos[lead]]
        return out
    memo = memo or PerturbMemo(max_bytes=0)
    real = bank is not None and pert.kind in NST_RECORDS
    source = json.dumps({**pert.to_dict(), "level": None, "noise": bank.digest if real else "generated"})
    stored = memo.noise_for(source)
    unit = np.empty(x.shape, dtype=np.float32)
    for i, rid in enumerate(map(str, ids)):
        if rid not in stored:
            rng = noise_rng(pert.seed, pert.kind, rid)
            if real:
                n = bank.segment(pert.kind, x.shape[1], x.shape[2], rng)
            else:
                n = generate_noise(pert.kind, x.shape[1:], fs, rng, mains_hz=pert.mains_hz)
            power = noise_power(n, fs)
            with np.errstate(divide="ignore", invalid="ignore"):
                wave = np.where(power[:, None] > 0, n / np.sqrt(power)[:, None], 0.0).astype(np.float32)
            memo.keep(rid, wave)
        else:
            wave = stored[rid]
        unit[i] = wave
    gain = np.sqrt(_sizes(x, fs, ids, memo.sizes) / 10 ** (float(pert.level) / 10))
    return x + unit * gain[..., None].astype(np.float32)


def _sizes(x: np.ndarray, fs: float, ids: Sequence[str], memo: dict[str, np.ndarray]) -> np.ndarray:
    """The QRS sizes of the batch, computed only for the records ``memo`` lacks."""
    todo = [i for i, rid in enumerate(ids) if str(rid) not in memo]
    if todo:
        for i, size in zip(todo, qrs_power(x[todo], fs)):
            memo[str(ids[i])] = size
    return np.stack([memo[str(rid)] for rid in ids])


class PerturbedSource(SignalSource):
    """A :class:`SignalSource` that perturbs the records of ``base`` as they are read.

    Content digests combine each base record's digest with the perturbation (and the noise
    records' digest), so checking the embedding cache perturbs nothing.
    """

    def __init__(
        self,
        base: SignalSource,
        pert: Perturbation,
        ids: np.ndarray,
        fs: float,
        leads: tuple[str, ...],
        plan: LeadPlan | None = None,
        bank: NoiseBank | None = None,
        memo: PerturbMemo | None = None,
    ) -> None:
        self.base, self.pert, self.ids, self.fs, self.leads = base, pert, np.asarray(ids), fs, leads
        self.plan, self.bank, self.memo = plan, bank, memo
        self.n_leads = len(plan.leads_out) if plan is not None else base.n_leads
        self.n_samples = base.n_samples
        self._tag = json.dumps(
            {**pert.to_dict(), "noise": bank.digest if bank else "generated"}, sort_keys=True
        ).encode()

    def __len__(self) -> int:
        return len(self.base)

    def read(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        x = self.base.read(idx)
        return perturb(
            x, self.fs, self.leads, self.pert, self.ids[idx], plan=self.plan, bank=self.bank, memo=self.memo
        )

    def take(self, indices: np.ndarray) -> PerturbedSource:
        idx = np.asarray(indices, dtype=np.int64)
        return PerturbedSource(
            self.base.take(idx),
            self.pert,
            self.ids[idx],
            self.fs,
            self.leads,
            self.plan,
            self.bank,
            self.memo,
        )

    def digests(self, indices: np.ndarray) -> list[str]:
        return [content_digest(d.encode(), self._tag) for d in self.base.digests(indices)]


def perturbed_view(
    records: RecordSet,
    pert: Perturbation,
    *,
    required_leads: Sequence[str] | None = None,
    bank: NoiseBank | None = None,
    memo: PerturbMemo | None = None,
) -> RecordSet:
    """``records`` seen through ``pert``: a lazy view whose ``params`` (hence identity and cache
    key) carry the perturbation, its seed and the noise source.

    Args:
        records: the (clean) records, e.g. the test split.
        pert: the perturbation.
        required_leads: the encoder's contract leads (lead sets: zero-fill what it needs).
        bank: real noise records (:func:`~ecgprobe.data.noise.load_nst_noise`) at ``records.fs``;
            ``None``: generated noise.
        memo: what the views of one set of records share (:class:`PerturbMemo`).

    Raises:
        ConfigError: a lead set the records cannot provide, or a bank at another rate.
        IncompatibleInputError: mains interference the sampling rate cannot hold.
    """
    if bank is not None and bank.fs != records.fs:
        raise ConfigError(
            f"noise records were resampled to {bank.fs:g} Hz but the records are at {records.fs:g} Hz"
        )
    if pert.kind == "mains":
        check_mains(records.fs, pert.mains_hz)
    plan = lead_plan(records.leads, pert.level, required_leads) if pert.kind == "leads" else None
    use_bank = bank if pert.kind in NST_RECORDS else None
    source = PerturbedSource(
        records.source, pert, records.ids, records.fs, records.leads, plan, use_bank, memo
    )
    about = pert.to_dict()
    if pert.family == "noise":
        about["noise"] = (
            f"NST record {NST_RECORDS[pert.kind]} ({use_bank.digest[:12]})" if use_bank else "generated"
        )
    if plan is not None:
        about.update(handling=plan.handling, plan=plan.describe())
    params = {**records.params, "perturbation": about}
    return replace(
        records,
        source=source,
        leads=plan.leads_out if plan is not None else records.leads,
        params=params,
        notes=(*records.notes, f"perturbed: {pert.label}"),
    )
