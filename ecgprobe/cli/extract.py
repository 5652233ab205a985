"""``ecgprobe extract``: embeddings of a dataset, written in the exchange format."""

from __future__ import annotations

import argparse
import sys

from ecgprobe.cli import common
from ecgprobe.settings import parse_layers

#: What ``extract`` writes (one ``embeddings.<layer>.npy`` per layer when there are several).
OUTPUTS = ("manifest.json", "ids.npy", "embeddings.npy", "embeddings.*.npy")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the extract command."""
    p = sub.add_parser(
        "extract",
        help="extract embeddings (cached) and write embeddings.npy + ids.npy + manifest.json",
        description="Extract embeddings of every record of a dataset with an encoder. Results are cached by "
        "content and provenance: running it again reuses the cache and says so.",
    )
    common.add_dataset_args(p)
    common.add_encoder_args(p, embeddings=False)
    p.add_argument(
        "--layers", default=None, help="'all', or comma-separated layer names (default: the embedding)"
    )
    common.add_extraction_args(p)
    common.add_output_args(p)
    p.set_defaults(handler=cmd_extract)


def cmd_extract(args: argparse.Namespace) -> int:
    """Extract and save."""
    from ecgprobe.extract import save_embeddings

    layers = parse_layers(args.layers, option="--layers")
    output = common.check_output(args, OUTPUTS)  # before the extraction, not after it
    # Records stream from disk during the extraction: a cached re-run decodes none of them.
    records = common.dataset_from_args(args, lazy=True)
    result = common.embeddings_from_args(args, records, layers=layers)
    embs = [result] if not isinstance(result, dict) else list(result.values())
    with output.staged() as tmp:
        save_embeddings(tmp, embs, records=records)
    folder = output.folder
    if not args.quiet:
        dims = ", ".join(f"{e.layer} {e.dim}" for e in embs)
        print(f"wrote {len(embs[0])} x ({dims}) embeddings to {folder}", file=sys.stderr)
    return 0
