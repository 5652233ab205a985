"""The ``demo`` task of the synthetic generator: realistic labels, a planted confounder and a planted subgroup gap.

The ``clean`` task (:mod:`ecgprobe.data.synthetic`) gives every label one all-or-nothing cause,
so any reasonable encoder scores it perfectly and nothing beyond accuracy can be seen. This
task builds the same kind of signals (the renderer is shared) from a table in which:

Labels have graded, overlapping causes and imperfect annotations (``DEMO_LABELS``):

- ``tachycardia``: the annotated heart rate exceeds 100 bpm. Rates are continuous (a patient's
  resting rate, varying between records, faster in AF); the annotator reads another strip
  (its rate differs by ~6 %), so records near 100 bpm are labelled either way.
- ``wide_qrs``: annotated QRS duration >= 120 ms. Durations are continuous (normal conduction
  ~92 ms in men, ~86 ms in women; conduction disease ~132 ms in men, ~121 ms in women, more
  frequent with age); the annotated value has a 7 ms reading error, so borderline QRS widths
  go either way.
- ``st_elevation``: an acute anterolateral injury current (ST plateau along -Z and +X,
  elevating V1-V6, I and aVL) of graded size (0.08-0.35 mV along -Z in the VCG), over a
  background of normal J-point/early repolarisation elevation (0.02 +- 0.035 mV) that every
  record has.
- ``lvh``: left ventricular hypertrophy (a patient's true state, as an echocardiogram would
  say): QRS voltage raised by up to 80 % and a strain pattern (flattened or inverted T) in proportion to
  its severity, over between-patient differences of ~20 % in voltage and ~25 % in T size.
- ``afib``: atrial fibrillation of graded irregularity and f-wave size (fine AF has almost
  none), among sinus rhythms of which 30 % have premature atrial beats (irregular too).

Annotations err as readers do: 5 % of present findings are missed and 1.5 % of absent ones
reported, for every label. Records belong
to patients (1-3 records each) who share sex, age, site, voltage, axis, resting rate, QRS
duration and LVH; AF episodes are per record in AF-prone patients.

Planted confounder (``meta["site"]``): patients come from two sites, ``"A"`` (a general
hospital, 50 Hz mains, low-noise carts) and ``"B"`` (an arrhythmia clinic recording with 60 Hz
mains hum of 30-80 uV, 1.8 x the amplifier noise and 1.5 x the baseline wander). AF-prone
patients are 45 % of site B and 7 % of site A, so ``afib`` is 4-6 times as prevalent at site B
(30-40 % vs 7-9 % of records): an encoder that sees the site's artefact can score ``afib``
partly from the recording, not the rhythm. Site alone scores ``afib`` with an AUROC of ~0.7.
(AF's faster rate makes site B's tachycardia a little more frequent too; no other label
depends on the site.)

Planted subgroup effect (``meta["sex"]``): in women the ST elevation of an injury and the voltage
increase and strain of LVH are expressed at a fifth of their strength in men, and a conduction
block widens the QRS less (to ~121 ms, on the threshold). The direction is real (women's
smaller ST deviations, LV voltages and hearts are why STEMI, LVH and LBBB criteria are
sex-specific); the size is exaggerated so that the gap shows at a few hundred records:
``st_elevation``, ``lvh`` and ``wide_qrs`` are harder to read in women, and a probe's
macro-AUROC gap for ``sex = female`` is negative (-0.07 to -0.10 at 400 records, seed 0, for
linear probes on ``handcrafted`` and ``openecg-codec`` features; ``benchmarks/bench_demo_task.py``).

The default split gives 35 % of the records to test (``DEMO_FRACTIONS``) so that at the
demo's 400 records each label has enough test patients for a headline interval and each sex
and the two middle age bands have the >= 20 test records a subgroup analysis needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used (light commands stay light)
    import pandas as pd

__all__ = ["DEMO_FRACTIONS", "DEMO_LABELS", "DEMO_NOTES", "demo_descriptions", "demo_table"]

DEMO_LABELS: tuple[str, ...] = ("tachycardia", "wide_qrs", "st_elevation", "lvh", "afib")
DEMO_FRACTIONS: tuple[float, float, float] = (0.5, 0.15, 0.35)
#: What the task plants, as the RecordSet's notes (shown with the dataset in reports).
DEMO_NOTES: tuple[str, ...] = (
    "synthetic task 'demo': labels have graded causes and annotation errors (5 % missed, 1.5 % false; "
    "borderline rates, QRS widths and ST levels are labelled either way)",
    "planted confounder: site B (60 Hz mains hum, noisier carts) has 4-6x the afib prevalence of site A "
    "(50 Hz, quiet); meta column 'site'",
    "planted subgroup effect: in women the ST elevation and LVH signatures are a fifth as strong and a "
    "conduction block widens the QRS less; "
    "meta column 'sex'",
)
#: Annotation error rates: a present finding missed, an absent one reported.
_MISS, _FALSE_ALARM = 0.05, 0.015
_FEMALE_EXPRESSION = 0.2
_AF_PRONE = {"A": 0.07, "B": 0.45}


def demo_descriptions() -> dict[str, str]:
    """A one-line description of each demo label and what causes it."""
    return {
        "tachycardia": "annotated heart rate > 100 bpm (rates continuous; annotation read on another strip)",
        "wide_qrs": "annotated QRS duration >= 120 ms (durations continuous, 7 ms reading error); blocks narrower in women",
        "st_elevation": "anterior injury current of graded size over normal J-point elevation; a fifth as strong in women",
        "lvh": "left ventricular hypertrophy: raised QRS voltage and T strain by severity; a fifth as strong in women",
        "afib": "atrial fibrillation of graded irregularity and f-wave size; 4-6x as prevalent at site B",
    }


def _flip(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    return truth ^ (rng.random(len(truth)) < np.where(truth, _MISS, _FALSE_ALARM))


def demo_table(n: int, seed: int) -> pd.DataFrame:
    """The per-record parameter table of the demo task: render columns, labels and metadata.

    Args:
        n: number of records.
        seed: seed of the table (patients, causes, annotations).

    Returns:
        One row per record with the renderer's physical columns (``hr``, ``qrs_width``, ``st_z``,
        ``hum_hz``, ...), the labels ``DEMO_LABELS`` (bool), ``patient``, ``age``, ``sex``,
        ``site`` and ``qrs_ms``.
    """
    import pandas as pd

    rng = np.random.default_rng([seed, 21])
    sizes = rng.choice([1, 2, 3], size=n, p=[0.55, 0.3, 0.15])
    patient = np.repeat(np.arange(n), sizes)[:n]
    n_pat = int(patient.max()) + 1
    female_p = rng.random(n_pat) < 0.5
    age_p = np.clip(rng.normal(60, 16, n_pat), 18, 95).round()
    site_p = np.where(rng.random(n_pat) < 0.5, "B", "A").astype(object)
    amp_p = np.exp(rng.normal(0, 0.2, n_pat)) * np.where(female_p, 0.9, 1.0)
    axis_p = np.deg2rad(rng.normal(40, 25, n_pat))
    t_p = np.exp(rng.normal(0, 0.25, n_pat))  # T-wave size differs between patients
    hr_p = 84 * np.exp(rng.normal(0, 0.14, n_pat)) + np.where(female_p, 4.0, 0.0)
    conduction = rng.random(n_pat) < np.clip(0.1 + 0.005 * (age_p - 40), 0.05, 0.4)
    # women's smaller hearts conduct a block in less time (why LBBB criteria are sex-specific):
    # their widened QRS sits on the 120 ms threshold, where the reading error decides the label
    qrs_p = np.where(
        conduction,
        np.where(female_p, rng.normal(121, 10, n_pat), rng.normal(132, 14, n_pat)),
        rng.normal(92, 8, n_pat) - 6 * female_p,
    )
    lvh_p = np.where(rng.random(n_pat) < 0.22, rng.uniform(0.3, 1.0, n_pat), 0.0)
    prone_p = rng.random(n_pat) < np.array([_AF_PRONE[s] for s in site_p])

    female, site = female_p[patient], site_p[patient]
    expression = np.where(female, _FEMALE_EXPRESSION, 1.0)  # the planted subgroup effect
    afib = prone_p[patient] & (rng.random(n) < 0.85)
    hr = hr_p[patient] * np.exp(rng.normal(0, 0.12, n)) * np.where(afib, 1.15, 1.0)
    qrs_ms = np.clip(qrs_p[patient] + rng.normal(0, 3, n), 70, 180)
    width = 1 + (qrs_ms - 95) / 55  # the renderer's QRS scale: 95 ms -> 1, 150 ms -> 2
    lvh = lvh_p[patient] * expression
    injury = rng.random(n) < 0.2
    st_mv = np.where(injury, rng.uniform(0.08, 0.35, n), 0.0) * expression
    j_point = rng.normal(0.02, 0.035, n)  # normal J-point elevation / early repolarisation
    site_b = site == "B"
    ectopic = ~afib & (rng.random(n) < 0.3)

    truth = {
        "tachycardia": hr * np.exp(rng.normal(0, 0.06, n)) > 100,
        "wide_qrs": qrs_ms + rng.normal(0, 7, n) >= 120,
        "st_elevation": injury,
        "lvh": lvh_p[patient] > 0,
        "afib": afib,
    }
    labels = {name: _flip(rng, truth[name]) for name in DEMO_LABELS}
    return pd.DataFrame(
        {
            "patient": patient,
            "age": age_p[patient],
            "sex": np.where(female, "female", "male").astype(object),
            "site": site,
            "hr": hr,
            "af_rhythm": afib,  # the rhythm drawn (the label may be an annotation error)
            "af_irregularity": np.where(afib, rng.uniform(0.3, 1.0, n), 1.0),
            "f_gain": np.where(afib, rng.uniform(0.0, 1.2, n), 1.0),
            "ectopy": np.where(ectopic, rng.uniform(0.05, 0.25, n), 0.0),
            "axis": axis_p[patient] + rng.normal(0, 0.05, n),
            "axis_t": axis_p[patient] + rng.normal(0, 0.2, n),
            "z_r": rng.normal(0.45, 0.12, n),
            "amp": amp_p[patient] * np.exp(rng.normal(0, 0.05, n)),
            "pr": rng.uniform(0.12, 0.2, n),
            "qrs_ms": qrs_ms,
            "qrs_width": width,
            "qrs_gain": 1 + 0.8 * lvh,
            "t_gain": t_p[patient] * (1 + 0.2 * np.clip(width - 1, 0, None)) * (1 - 1.4 * lvh),
            "st_x": 0.4 * st_mv,  # anterolateral: the injury also raises I, aVL, V5, V6
            "st_y": rng.normal(0.0, 0.02, n),
            "st_z": -(st_mv + j_point),
            "hum_hz": np.where(site_b, 60.0, 50.0),
            "hum_mv": np.where(site_b, rng.uniform(0.03, 0.08, n), rng.uniform(0.004, 0.012, n)),
            "noise_gain": np.where(site_b, 1.8, 1.0),
            "wander_gain": np.where(site_b, 1.5, 1.0),
            **{name: labels[name] for name in DEMO_LABELS},
        }
    )
