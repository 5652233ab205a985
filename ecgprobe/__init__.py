"""ecgprobe: what has an ECG foundation model really learned?"""

__version__ = "0.1.0"

from ecgprobe.data import RecordSet, list_datasets, load_dataset

__all__ = ["RecordSet", "__version__", "list_datasets", "load_dataset"]
