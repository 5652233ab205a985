"""A seeded generator of realistic 12-lead ECGs whose labels have a known physiological cause.

Each record is built as a vectorcardiogram (VCG, three orthogonal components X left, Y inferior,
Z posterior, in mV): every beat is a sum of Gaussian waves (P, Q, R, S, T) with a direction in
space. The eight independent leads (I, II, V1-V6) are the VCG projected by the inverse Dower
matrix (Dower et al. 1980); noise (white, baseline wander, 50 Hz, muscle bursts) is added to
those, and III, aVR, aVL, aVF are then derived from I and II, so Einthoven's and Goldberger's
relations (``III = II - I``, ...) hold exactly, as on a real electrocardiograph.

Beats follow an RR series with respiratory sinus arrhythmia and random heart-rate variability.
Labels and their causes (``LABELS``):

- ``tachycardia``: heart rate 105-150 bpm (otherwise 58-95 bpm);
- ``bradycardia``: heart rate 38-54 bpm (exclusive with tachycardia);
- ``wide_qrs``: QRS complex widened to ~150 ms (Q/R/S spread and broadened);
- ``st_elevation_inferior``: an ST-segment plateau along +Y, elevating II, III, aVF;
- ``st_elevation_anterior``: an ST plateau along -Z, elevating V1-V4;
- ``low_voltage``: QRS amplitudes scaled by 0.35 (limb-lead QRS < 0.5 mV);
- ``afib``: irregularly irregular RR intervals, no P waves, 4-8 Hz fibrillatory waves.

A record without any of these is normal. Records belong to patients (1-3 records each) who
share their morphology (electrical axis, amplitudes), age and sex. Signals are generated on
demand from ``(seed, record index)``, so any subset is reproducible and the dataset can be
made arbitrarily large without holding it in memory.

These all-or-nothing causes are ``task="clean"`` (the default): a known-answer check on which a
working pipeline scores every label near-perfectly. ``task="demo"``
(:mod:`ecgprobe.data.synthetic_demo`) draws graded causes with annotation errors, a planted site
confounder and a planted sex gap instead. A task is a table of physical parameters per record
(``RENDER_DEFAULTS`` lists the renderer's columns beyond rate, axis, voltage and PR); the
renderer below is shared, so both tasks obey the same lead physics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ecgprobe.data.leads import LEADS_12, derive_limb_leads
from ecgprobe.data.loading import DATASETS, finish
from ecgprobe.data.record import ArraySource, RecordSet, SignalSource
from ecgprobe.data.sources import LoadedSignals
from ecgprobe.data.splits import check_fractions
from ecgprobe.data.synthetic_demo import (
    DEMO_FRACTIONS,
    DEMO_LABELS,
    DEMO_NOTES,
    demo_descriptions,
    demo_table,
)
from ecgprobe.exceptions import ConfigError

if TYPE_CHECKING:  # pandas is imported where it is used (light commands stay light)
    import pandas as pd

__all__ = ["DEMO_LABELS", "DOWER", "LABELS", "RENDER_DEFAULTS", "TASKS", "SyntheticSource", "load_synthetic"]

LABELS: tuple[str, ...] = (
    "tachycardia",
    "bradycardia",
    "wide_qrs",
    "st_elevation_inferior",
    "st_elevation_anterior",
    "low_voltage",
    "afib",
)
_DEFAULT_PREVALENCE = {
    "tachycardia": 0.15,
    "bradycardia": 0.12,
    "wide_qrs": 0.15,
    "st_elevation_inferior": 0.12,
    "st_elevation_anterior": 0.12,
    "low_voltage": 0.12,
    "afib": 0.10,
}
#: Inverse Dower transform: rows I, II, V1..V6; columns VCG X, Y, Z (Dower et al. 1980).
DOWER = np.array(
    [
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
    ],
    dtype=np.float64,
)
_GENERATOR_VERSION = 1


@dataclass(frozen=True)
class _Params:
    fs: float
    n_samples: int
    seed: int
    noise: float


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _gauss_kernel(sigma_s: float, fs: float) -> np.ndarray:
    half = max(int(np.ceil(4 * sigma_s * fs)), 1)
    t = np.arange(-half, half + 1) / fs
    return np.exp(-0.5 * (t / sigma_s) ** 2)


def _place(n: int, times_s: np.ndarray, weights: np.ndarray, kernel: np.ndarray, fs: float) -> np.ndarray:
    """Sum of ``weights[k] * kernel`` centred at ``times_s[k]`` (impulse train * kernel)."""
    half = len(kernel) // 2
    imp = np.zeros(n + 2 * half, dtype=np.float64)
    idx = np.round(times_s * fs).astype(np.int64) + half
    ok = (idx >= 0) & (idx < len(imp))
    np.add.at(imp, idx[ok], weights[ok])
    return np.convolve(imp, kernel, mode="same")[half : half + n]


def _render(p: _Params, rec: pd.Series, index: int) -> np.ndarray:
    """One record (12, n_samples) float32 mV from its row of physical parameters (``RENDER_COLUMNS``)."""
    rng = np.random.default_rng([p.seed, 7, index])
    fs, n = p.fs, p.n_samples
    dur = n / fs
    rr_mean = 60.0 / rec.hr
    # --- beat times: RSA + random HRV, or irregularly irregular AF
    beats = [rng.uniform(0.0, rr_mean)]
    resp_f, resp_phi = rng.uniform(0.15, 0.35), rng.uniform(0, 2 * np.pi)
    while beats[-1] < dur + 1.0:
        t = beats[-1]
        if rec.af_rhythm:
            rr = rr_mean * float(np.exp(rng.normal(0.0, 0.22 * rec.af_irregularity)))
        else:
            rr = rr_mean * (1 + 0.04 * np.sin(2 * np.pi * resp_f * t + resp_phi)) + rng.normal(
                0, 0.015 * rr_mean
            )
        beats.append(t + max(rr, 0.28))
    tb = np.asarray(beats)
    if rec.ectopy > 0 and not rec.af_rhythm:
        # premature atrial beats: a beat comes 20-35 % of an RR early (an irregular sinus rhythm);
        # drawn from a stream of their own so that records without ectopy keep their samples
        extra = np.random.default_rng([p.seed, 11, index])
        early = extra.random(len(tb)) < rec.ectopy
        tb = tb - early * extra.uniform(0.2, 0.35, len(tb)) * rr_mean
    nb = len(tb)
    amp_mod = 1 + 0.05 * np.sin(2 * np.pi * resp_f * tb + resp_phi)  # respiration modulates amplitude

    wide = rec.qrs_width
    qrs_scale = rec.amp * rec.qrs_gain
    u_r = _unit(np.array([np.cos(rec.axis), np.sin(rec.axis), rec.z_r]))
    u_t = _unit(np.array([np.cos(rec.axis_t), np.sin(rec.axis_t), 0.1]))
    u_p = _unit(np.array([np.cos(np.deg2rad(55)), np.sin(np.deg2rad(55)), -0.1]))
    u_q = _unit(np.array([-0.5, 0.2, -0.8]))
    u_s = _unit(np.array([-0.6, -0.4, 0.5]))
    qt = 0.30 * np.sqrt(rr_mean)  # Bazett-like QT adaptation of the T position
    waves = [  # (centre rel. to R [s], sigma [s], direction, amplitude [mV])
        (-0.025 * wide, 0.008 * wide, u_q, 0.12 * qrs_scale),
        (0.0, 0.011 * wide, u_r, 1.5 * qrs_scale),
        (0.03 * wide, 0.011 * wide, u_s, 0.35 * qrs_scale),
        (qt, 0.055 + 0.01 * rng.random(), u_t, 0.32 * rec.amp * rec.t_gain),
    ]
    if not rec.af_rhythm:
        waves.append((-rec.pr, 0.022, u_p, 0.14 * rec.amp))
    vcg = np.zeros((3, n), dtype=np.float64)
    for centre, sigma, direction, amplitude in waves:
        w = _place(n, tb + centre, amplitude * amp_mod, _gauss_kernel(sigma, fs), fs)
        vcg += direction[:, None] * w[None, :]
    st_dir = np.array([rec.st_x, rec.st_y, rec.st_z], dtype=np.float64)
    if st_dir.any():
        # ST plateau: raised-cosine window from the J point to the T-wave upstroke
        span = max(qt - 0.06 * wide - 0.04, 0.08)
        k = np.hanning(max(int(span * fs), 3))
        centre_shift = 0.06 * wide + span / 2
        st = _place(n, tb + centre_shift, np.ones(nb), k, fs)
        vcg += st_dir[:, None] * st[None, :]
    t = np.arange(n) / fs
    if rec.af_rhythm:
        f_dir = _unit(np.array([0.3, 0.5, -0.6]))
        fw = sum(
            rng.uniform(0.02, 0.05)
            * rec.f_gain
            * np.sin(2 * np.pi * rng.uniform(4, 8) * t + rng.uniform(0, 2 * np.pi))
            for _ in range(3)
        )
        vcg += f_dir[:, None] * fw[None, :]
    leads8 = DOWER @ vcg  # I, II, V1..V6
    # --- noise on the electrodes' independent leads
    sigma = p.noise * rec.noise_gain * rng.uniform(0.5, 1.5)
    leads8 += rng.normal(0.0, sigma, size=leads8.shape)
    wander = (
        rec.wander_gain
        * rng.uniform(0.02, 0.2, size=(8, 1))
        * np.sin(
            2 * np.pi * rng.uniform(0.05, 0.4, size=(8, 1)) * t[None, :]
            + rng.uniform(0, 2 * np.pi, size=(8, 1))
        )
    )
    hum = rec.hum_mv * np.sin(2 * np.pi * rec.hum_hz * t + rng.uniform(0, 2 * np.pi))
    leads8 += wander + hum[None, :]
    if rng.random() < 0.2:  # a muscle-artefact burst
        start = rng.integers(0, n)
        length = int(rng.uniform(0.3, 1.5) * fs)
        leads8[:, start : start + length] += rng.normal(
            0, 3 * sigma, size=(8, len(range(start, min(n, start + length))))
        )
    i_, ii = leads8[0], leads8[1]
    limb = derive_limb_leads(i_, ii)
    out = np.stack([i_, ii, limb["III"], limb["aVR"], limb["aVL"], limb["aVF"], *leads8[2:]])
    return out.astype(np.float32)


class SyntheticSource(SignalSource):
    """Signals generated on demand from the per-record parameter table (picklable, lazy)."""

    def __init__(self, params: _Params, table: pd.DataFrame, index: np.ndarray | None = None) -> None:
        self._p = params
        self._table = table
        self._index = np.arange(len(table)) if index is None else np.asarray(index, dtype=np.int64)
        self.n_leads = 12
        self.n_samples = params.n_samples

    def __len__(self) -> int:
        return len(self._index)

    def take(self, indices: np.ndarray) -> SyntheticSource:
        return SyntheticSource(self._p, self._table, self._index[np.asarray(indices, dtype=np.int64)])

    def read(self, indices: np.ndarray) -> np.ndarray:
        idx = self._index[np.asarray(indices, dtype=np.int64)]
        out = np.empty((len(idx), 12, self.n_samples), dtype=np.float32)
        for k, i in enumerate(idx):
            out[k] = _render(self._p, self._table.iloc[int(i)], int(i))
        return out


#: Renderer columns a task's table may leave out, with their neutral values (the ``clean`` task's).
RENDER_DEFAULTS: dict[str, float | bool] = {
    "af_rhythm": False,  # atrial fibrillation drawn (a task's ``afib`` label may be an annotation error)
    "qrs_width": 1.0,  # scale of the QRS waves' spread and width (95 ms at 1, ~150 ms at 2)
    "qrs_gain": 1.0,  # QRS amplitude factor on top of the patient's voltage ``amp``
    "t_gain": 1.0,  # T amplitude factor (negative: inverted T)
    "st_x": 0.0,  # ST plateau along +X (mV in the VCG): elevates I, aVL, V5, V6
    "st_y": 0.0,  # ST plateau along +Y: elevates II, III, aVF
    "st_z": 0.0,  # ST plateau along Z: negative elevates V1-V4
    "af_irregularity": 1.0,  # scale of the AF RR spread (log-normal, sigma 0.22 at 1)
    "f_gain": 1.0,  # f-wave amplitude factor in AF
    "ectopy": 0.0,  # probability of each sinus beat being a premature atrial beat
    "hum_hz": 50.0,  # mains frequency
    "hum_mv": 0.008,  # mains hum amplitude
    "noise_gain": 1.0,  # factor on the white-noise level
    "wander_gain": 1.0,  # factor on the baseline wander
}


def _record_table(n: int, seed: int, prevalence: dict[str, float]) -> pd.DataFrame:
    """The ``clean`` task: each label has one all-or-nothing cause."""
    import pandas as pd

    rng = np.random.default_rng([seed, 1])
    # patients with 1-3 records each
    sizes = rng.choice([1, 2, 3], size=n, p=[0.6, 0.3, 0.1])
    patient = np.repeat(np.arange(n), sizes)[:n]
    n_pat = int(patient.max()) + 1
    p_age = np.clip(rng.normal(60, 16, n_pat), 18, 95).round()
    p_sex = rng.choice(np.array(["female", "male"], dtype=object), n_pat)
    p_axis = np.deg2rad(rng.normal(40, 20, n_pat))
    p_amp = np.exp(rng.normal(0, 0.18, n_pat)) * np.where(p_sex == "female", 0.9, 1.0)
    lab = {name: rng.random(n) < prevalence[name] for name in LABELS}
    lab["bradycardia"] &= ~lab["tachycardia"]
    hr = np.where(
        lab["tachycardia"],
        rng.uniform(105, 150, n),
        np.where(lab["bradycardia"], rng.uniform(38, 54, n), rng.uniform(58, 95, n)),
    )
    table = pd.DataFrame(
        {
            "patient": patient,
            "age": p_age[patient],
            "sex": p_sex[patient],
            "axis": p_axis[patient] + rng.normal(0, 0.05, n),
            "axis_t": p_axis[patient] + rng.normal(0, 0.15, n),
            "z_r": rng.normal(0.45, 0.1, n),
            "amp": p_amp[patient] * np.exp(rng.normal(0, 0.05, n)),
            "pr": rng.uniform(0.13, 0.19, n),
            "hr": hr,
            **{k: v for k, v in lab.items()},
            **RENDER_DEFAULTS,
            "af_rhythm": lab["afib"],
            "qrs_width": np.where(lab["wide_qrs"], 2.0, 1.0),
            "qrs_gain": np.where(lab["low_voltage"], 0.35, 1.0),
            "t_gain": np.where(lab["wide_qrs"], 1.2, 1.0),
            "st_y": np.where(lab["st_elevation_inferior"], 0.22, 0.0),
            "st_z": np.where(lab["st_elevation_anterior"], -0.20, 0.0),
        }
    )
    table["qrs_ms"] = np.where(table["wide_qrs"], 150.0, 95.0)
    return table


TASKS: tuple[str, ...] = ("clean", "demo")


@DATASETS.register(
    "synthetic", needs_root=False, summary="seeded realistic 12-lead ECGs with known-cause labels"
)
def load_synthetic(
    *,
    n_records: int = 1000,
    task: Literal["clean", "demo"] = "clean",
    fs: float = 500.0,
    duration_s: float = 10.0,
    seed: int = 0,
    noise: float = 0.02,
    prevalence: dict[str, float] | None = None,
    fractions: tuple[float, float, float] | None = None,
    lazy: bool | Literal["auto"] = "auto",
) -> RecordSet:
    """Generate a synthetic 12-lead dataset.

    The default ``task="clean"`` is a known-answer check: every label has one all-or-nothing
    cause, so a working encoder and probe score it near-perfectly and a failure points at the
    pipeline. ``task="demo"`` (:mod:`ecgprobe.data.synthetic_demo`) is a realistic study in
    miniature: graded causes with annotation errors (AUROCs well below 1), a planted site
    confounder (``meta["site"]``: site B's 60 Hz hum goes with 4-6x the AF prevalence) and a
    planted subgroup effect (ST elevation, LVH and QRS widening weaker in women).

    Args:
        n_records: number of records.
        task: ``"clean"`` (labels ``LABELS``, each with one all-or-nothing cause) or ``"demo"``
            (labels ``DEMO_LABELS``: graded causes, label noise, a site confounder and a sex gap).
        fs: sampling rate in Hz.
        duration_s: record length in seconds.
        seed: seed of everything (patients, labels, signals); the same seed gives the same data.
        noise: white-noise standard deviation in mV (scaled per record by U(0.5, 1.5)).
        prevalence: per-label probability overriding the defaults (about 0.1-0.15 each); task
            ``"clean"`` only (the demo's prevalences are part of what it plants).
        fractions: train/val/test shares of the patient-wise stratified split; default
            (0.7, 0.15, 0.15), for ``"demo"`` (0.5, 0.15, 0.35): a test set large enough for
            subgroup intervals at a few hundred records.
        lazy: generate signals per batch on demand (``"auto"``: when over 2 GiB).

    Raises:
        ConfigError: an invalid option, naming it and what is allowed.

    Example:
        >>> rs = load_synthetic(n_records=8, seed=3)
        >>> rs.label_names[:2]
        ('tachycardia', 'bradycardia')
        >>> load_synthetic(n_records=8, seed=3, task="demo").meta.columns.tolist()
        ['age', 'sex', 'site', 'heart_rate', 'qrs_ms']
    """
    if n_records < 1:
        raise ConfigError(f"n_records must be >= 1, got {n_records}")
    if task not in TASKS:
        raise ConfigError(f"task={task!r} is not a synthetic task; choose one of {list(TASKS)}")
    if fs < 50 or duration_s <= 0:
        raise ConfigError(f"fs must be >= 50 Hz and duration_s > 0, got fs={fs}, duration_s={duration_s}")
    if fractions is None:
        fractions = DEMO_FRACTIONS if task == "demo" else (0.7, 0.15, 0.15)
    check_fractions(fractions)
    if task == "demo":
        if prevalence:
            raise ConfigError(
                "prevalence applies to task='clean' only; the demo task's prevalences are part of what it "
                "plants (site B's AF excess): leave prevalence out, or use task='clean'"
            )
        table, labels, prev = demo_table(n_records, seed), DEMO_LABELS, None
        columns: tuple[str, ...] = ("age", "sex", "site", "heart_rate", "qrs_ms")
    else:
        prev = _prevalence(prevalence)
        table, labels = _record_table(n_records, seed, prev), LABELS
        columns = ("age", "sex", "heart_rate", "qrs_ms")
    params = _Params(float(fs), int(round(fs * duration_s)), int(seed), float(noise))
    source: SignalSource = SyntheticSource(params, table)
    nbytes = n_records * 12 * params.n_samples * 4
    if lazy is False or (lazy == "auto" and nbytes <= 2 * 1024**3):
        source = ArraySource(source.read(np.arange(n_records)), owned=True)
    y = table[list(labels)].to_numpy(dtype=np.uint8)
    pids = np.asarray([f"P{p:06d}" for p in table["patient"]], dtype=object)
    meta = table.assign(heart_rate=table["hr"].round(1))[list(columns)].reset_index(drop=True)
    options = {"task": task} if task != "clean" else {}  # clean keeps its identity (and caches)
    records = finish(
        LoadedSignals(source, np.ones(n_records, dtype=bool), []),
        fs=float(fs),
        leads=LEADS_12,
        ids=np.asarray([f"syn{seed}-{i:06d}" for i in range(n_records)], dtype=object),
        patient_ids=pids,
        label_names=labels,
        y=y,
        meta=meta,
        name="synthetic",
        params={
            "n_records": n_records,
            **options,
            "fs": float(fs),
            "duration_s": float(duration_s),
            "noise": noise,
            "prevalence": prev,
            "generator_version": _GENERATOR_VERSION,
        },
        notes=list(DEMO_NOTES) if task == "demo" else [],
        fractions=fractions,
        seed=seed,
    )
    return records.with_descriptions(demo_descriptions()) if task == "demo" else records


def _prevalence(overrides: dict[str, float] | None) -> dict[str, float]:
    prev = dict(_DEFAULT_PREVALENCE)
    for k, v in (overrides or {}).items():
        if k not in prev:
            raise ConfigError(f"prevalence: unknown label {k!r}; labels are {list(LABELS)}")
        if not 0 <= v <= 1:
            raise ConfigError(f"prevalence[{k!r}]={v} must lie in [0, 1]")
        prev[k] = float(v)
    return prev
