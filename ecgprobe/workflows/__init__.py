"""Workflows: what runs analyses in order and turns their results into reports.

- :func:`model_report`: every analysis of one encoder (:mod:`.model`);
- :func:`compare_report`, :func:`scarcity_report`: two encoders side by side, or the
  data-scarcity curves of several (:mod:`.compare`);
- :class:`Study`, :func:`load_study`, :func:`run_study`: encoders × datasets × reports from one
  YAML file; the demo (:func:`demo_study`) and ``ecgprobe scarcity --encoders`` are studies too;
- :func:`plan_analyses` and :func:`run_analyses`: which analyses, with which settings, each after
  those it ``requires``; :class:`ResultCache`: the analysis-result cache.

Every workflow takes one :class:`~ecgprobe.settings.RunSettings`. The report package only
renders the results these produce.
"""

from ecgprobe.workflows.cache import ResultCache, embeddings_identity
from ecgprobe.workflows.compare import compare_report, scarcity_report, write_scarcity_csv
from ecgprobe.workflows.demo import demo_study
from ecgprobe.workflows.model import model_report
from ecgprobe.workflows.plan import PROFILES, plan_analyses, resolve_analyses
from ecgprobe.workflows.runner import Analysed, run_analyses, run_pairwise
from ecgprobe.workflows.study import Study, load_study, study_outputs
from ecgprobe.workflows.study_runner import run_study

__all__ = [
    "PROFILES",
    "Analysed",
    "ResultCache",
    "Study",
    "compare_report",
    "demo_study",
    "embeddings_identity",
    "load_study",
    "model_report",
    "plan_analyses",
    "resolve_analyses",
    "run_analyses",
    "run_pairwise",
    "run_study",
    "scarcity_report",
    "study_outputs",
    "write_scarcity_csv",
]
