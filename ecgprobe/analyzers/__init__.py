"""Analyzers: typed results from embeddings (probes, geometry, attributions, ...).

Each module of this package (other than ``base``) defines analyzers registered with
``@ANALYZERS.register``; they are imported here, so adding one is adding one file.
"""

from ecgprobe._discover import import_submodules
from ecgprobe.analyzers.base import ANALYZERS, RESULT_TYPES, Analyzer, PairwiseAnalyzer, Result

import_submodules(__name__, skip=("base",))

__all__ = ["ANALYZERS", "RESULT_TYPES", "Analyzer", "PairwiseAnalyzer", "Result"]
