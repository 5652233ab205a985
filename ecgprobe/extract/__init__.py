"""Embedding extraction: batched, windowed, multi-layer, cached by content and provenance."""

from ecgprobe.extract.embeddings import Embeddings, align_to_records, load_embeddings, save_embeddings
from ecgprobe.extract.extractor import extract

__all__ = ["Embeddings", "align_to_records", "extract", "load_embeddings", "save_embeddings"]
