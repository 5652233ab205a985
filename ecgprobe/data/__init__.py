"""The data layer: loaders that read ECG datasets into :class:`RecordSet`, and preprocessing."""

from ecgprobe.data.leads import LEADS_8, LEADS_12, canonical_lead, canonical_leads
from ecgprobe.data.loading import DATASETS, dataset_options, list_datasets, load_dataset
from ecgprobe.data.record import SPLITS, ArraySource, RecordSet, SignalSource

# Loader modules register themselves on import.
from ecgprobe.data import ptbxl as _ptbxl  # noqa: F401  isort: skip
from ecgprobe.data import synthetic as _synthetic  # noqa: F401  isort: skip
from ecgprobe.data import challenge as _challenge  # noqa: F401  isort: skip
from ecgprobe.data import folder as _folder  # noqa: F401  isort: skip

__all__ = [
    "DATASETS",
    "LEADS_8",
    "LEADS_12",
    "SPLITS",
    "ArraySource",
    "RecordSet",
    "SignalSource",
    "canonical_lead",
    "canonical_leads",
    "dataset_options",
    "list_datasets",
    "load_dataset",
]
