"""The data layer: loaders that read ECG datasets into :class:`RecordSet`, and preprocessing."""

from ecgprobe._discover import import_submodules
from ecgprobe.data.leads import LEADS_8, LEADS_12, canonical_lead, canonical_leads
from ecgprobe.data.loading import DATASETS, dataset_options, list_datasets, load_dataset
from ecgprobe.data.pool import pool
from ecgprobe.data.record import SPLITS, ArraySource, RecordSet, SignalSource

# Every other module of this package is a loader registering itself: adding a dataset is one file.
import_submodules(
    __name__,
    skip=(
        "beats",
        "harmonise",
        "leads",
        "loading",
        "pool",
        "preprocess",
        "record",
        "sources",
        "splits",
        "wfdb_io",
    ),
)

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
    "pool",
]
