"""The demo, as a study: reports on generated ECGs, with no download.

On a synthetic 12-lead dataset whose labels have known physiological causes, with the reference
encoders (``random-resnet1d``: random weights, the floor any pretrained model must beat;
``handcrafted``: interpretable ECG features) and, when the ``openecg`` package is installed, the
real pretrained ``openecg-codec``, :func:`demo_study` plans:

- a model report of the pretrained encoder and one of ``random-resnet1d`` (whose AF score the
  planted site confounder inflates: its confounding section and summary say so);
- a comparison of the pretrained encoder with ``random-resnet1d`` (of ``random-resnet1d`` with
  ``handcrafted`` without openecg);
- a data-scarcity study over all of them (with ``scarcity.csv``).

Embeddings and analyzer results are cached under the output folder's ``cache``, so running it
again re-renders in seconds.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ecgprobe.settings import RunSettings
from ecgprobe.workflows.study import Study

__all__ = ["OPENECG_DEMO_LEADS", "demo_encoders", "demo_study", "variant"]

#: The codec is single-lead and runs once per lead; three leads (frontal axis + anterior
#: precordial) keep the demo within minutes on a CPU while seeing every synthetic label's cause.
OPENECG_DEMO_LEADS = "I,II,V2"


def demo_encoders(use_openecg: bool) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, options)]`` of the demo's encoders, the one the model report is about first."""
    encoders: list[tuple[str, dict[str, Any]]] = [("random-resnet1d", {}), ("handcrafted", {})]
    if use_openecg and importlib.util.find_spec("openecg") is not None:
        encoders.insert(0, ("openecg-codec", {"leads": OPENECG_DEMO_LEADS}))
    return encoders


def variant(name: str, options: dict[str, Any]) -> str:
    """The name a demo encoder is shown under: its variant is named wherever it appears
    (``openecg-codec-3lead`` when it sees 3 of the 12 leads)."""
    leads = options.get("leads")
    return f"{name}-{len(str(leads).split(','))}lead" if leads else name


def _about(name: str, options: dict[str, Any]) -> str:
    leads = options.get("leads")
    return f"{name} on leads {', '.join(str(leads).split(','))}" if leads else name


def demo_study(
    out: str | Path,
    *,
    n_records: int = 400,
    seed: int = 0,
    profile: str = "quick",
    use_openecg: bool = True,
    device: str = "auto",
    progress: bool = True,
) -> Study:
    """The demo's study: model reports (the pretrained encoder, the random-weights floor), one
    comparison, one scarcity study, an index.

    Raises:
        ConfigError: a bad setting, naming it.
    """
    chosen = demo_encoders(use_openecg)
    encoders = [{"name": n, "options": o, "label": variant(n, o), "title": _about(n, o)} for n, o in chosen]
    main = encoders[0]["label"]
    ref = "random-resnet1d" if main != "random-resnet1d" else "handcrafted"
    out = Path(out)
    settings = RunSettings(
        device=device, layers="all", cache_dir=out / "cache", seed=seed, profile=profile, progress=progress
    )
    return Study(
        name="demo",
        title="ecgprobe demo",
        datasets=[
            {
                "name": "synthetic",
                "label": "synthetic",
                "title": "synthetic 12-lead ECGs",
                "options": {"n_records": n_records, "seed": seed, "task": "demo"},
            }
        ],
        encoders=encoders,
        out=out,
        settings=settings,
        # the random-weights floor gets its own report too: its AF score is the planted site's
        reports={
            "model": list(dict.fromkeys([main, "random-resnet1d"])),
            "compare": [[main, ref]],
            "scarcity": "all",
        },
        dataset_folders=False,
        intro=f"{n_records} generated 12-lead ECGs (seed {seed}); encoders: "
        + ", ".join(e["title"] for e in encoders)
        + ".",
    )
