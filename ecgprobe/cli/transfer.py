"""``ecgprobe transfer``: fit a probe on one dataset, test it on others, report the gap.

Example::

    ecgprobe transfer --dataset ptbxl --root A -o sampling_rate=100 -o labels=scored \\
        --encoder E --target challenge:B --target code15:C --out DIR

The source dataset (``--dataset/--root/-o``) gives the train/val/test splits of the probe; each
``--target LOADER:ROOT`` is loaded with the source's harmonised label set (``labels=scored`` or
``snomed``) unless ``--target-option LOADER.labels=...`` says otherwise. One encoder embeds every
dataset (through the cache). Writes ``results.json`` (+ ``.npz``), one CSV per table
(``targets``, ``per_label``, ``acquisition``, ``site``, ``matrix``) and ``report/report.html``
(+ ``.pdf``) into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ecgprobe.cli import common
from ecgprobe.exceptions import ConfigError

__all__ = ["register"]

_HARMONISED = ("scored", "snomed")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the transfer command."""
    p = sub.add_parser(
        "transfer",
        help="fit a probe on one dataset, test on others: AUROC in vs out of dataset, the gap, site predictability",
        description="Fit the linear probe on the source's train split (C on its validation split), evaluate once on "
        "its test split and on each --target on the labels present in both, with patient-bootstrap intervals; "
        "report the in- minus out-of-dataset gap, how well the embedding reveals the dataset (site "
        "predictability) and the datasets' acquisition facts.",
    )
    common.add_dataset_args(p)
    common.add_encoder_args(p, embeddings=False)
    common.add_extraction_args(p)
    g = p.add_argument_group("transfer")
    g.add_argument(
        "--target",
        action="append",
        default=[],
        required=True,
        metavar="LOADER:ROOT",
        help="a dataset to test on, repeatable, e.g. --target challenge:/data/cinc --target code15:/data/code15",
    )
    g.add_argument(
        "--target-option",
        action="append",
        default=[],
        metavar="LOADER.KEY=VALUE",
        help="a loader option of the targets of that loader, repeatable, e.g. --target-option challenge.fs=100",
    )
    g.add_argument(
        "--target-split",
        choices=("all", "test"),
        default="all",
        help="evaluate every target record (default) or a target's test split",
    )
    g.add_argument("--matrix", action="store_true", help="also fit on every target: the train x test matrix")
    g.add_argument("--no-site", action="store_true", help="skip site predictability")
    g.add_argument(
        "--n-resamples", type=common.positive_int, default=1000, help="bootstrap resamples (default 1000)"
    )
    g.add_argument(
        "--ci-level", type=common.open_interval, default=0.95, help="confidence level (default 0.95)"
    )
    g.add_argument(
        "--min-positives",
        type=common.non_negative_int,
        default=10,
        help="labels with fewer positive (or negative) patients in either set leave the headline macro (default 10)",
    )
    g.add_argument(
        "--seed", type=common.non_negative_int, default=0, help="seed of every random step (default 0)"
    )
    g.add_argument("--format", default="html,pdf", help="report formats (default html,pdf)")
    common.add_output_args(p)
    p.set_defaults(handler=cmd_transfer)


def _targets(args: argparse.Namespace, label_set: Any) -> list[tuple[str, Any]]:
    """``[(name, RecordSet)]`` of the ``--target`` values, loaded with their options."""
    from ecgprobe.data import DATASETS, dataset_options, load_dataset
    from ecgprobe.data.pool import source_names

    per_loader: dict[str, list[str]] = {}
    for item in args.target_option:
        loader, dot, pair = item.partition(".")
        if not dot or "=" not in pair:
            raise ConfigError(
                f"--target-option {item!r}: write it as LOADER.KEY=VALUE, e.g. challenge.fs=100"
            )
        per_loader.setdefault(DATASETS.entry(loader).name, []).append(pair)
    loaded = []
    for item in args.target:
        loader, colon, root = item.partition(":")
        if not colon or not root:
            raise ConfigError(f"--target {item!r}: write it as LOADER:ROOT, e.g. challenge:/data/cinc2021")
        name = DATASETS.entry(loader).name
        options = common.parse_options(per_loader.get(name, []), name)
        takes = {o.name for o in dataset_options(name)}
        if label_set in _HARMONISED and "labels" in takes and "labels" not in options:
            options["labels"] = label_set  # one label space with the source
        loaded.append(load_dataset(name, root, **options))
    unknown = sorted(set(per_loader) - {DATASETS.entry(t.partition(":")[0]).name for t in args.target})
    if unknown:
        raise ConfigError(f"--target-option names loaders {unknown} that no --target uses")
    names = source_names(loaded, None)
    return list(zip(names, loaded))


def _formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("html", "pdf")]
    if bad or not formats:
        raise ConfigError(f"--format {text!r}: use html and/or pdf, e.g. --format html,pdf")
    return formats


def cmd_transfer(args: argparse.Namespace) -> int:
    """Run the transfer evaluation and write its results and report."""
    from ecgprobe.cli.probe import write_result
    from ecgprobe.extract import extract
    from ecgprobe.report.document import Report
    from ecgprobe.workflows.model import report_context
    from ecgprobe.workflows.transfer import TransferSet, transfer

    t0 = time.perf_counter()
    formats = _formats(args.format)
    tables = ["targets", "per_label", "acquisition", *([] if args.no_site else ["site"])]
    tables += ["matrix"] if args.matrix else []
    report_files = [f"report/{n}" for n in ("results.json", "results.npz", *(f"report.{f}" for f in formats))]
    output = common.check_output(
        args, ["results.json", "results.npz", *(f"{t}.csv" for t in tables), *report_files]
    )
    settings = common.settings_from_args(args)
    records = common.dataset_from_args(args)
    encoder = common.encoder_from_args(args)
    source = TransferSet(
        records.name, records, common.embeddings_from_args(args, records, settings, encoder=encoder)
    )
    targets = []
    for name, rs in _targets(args, records.params.get("labels")):
        if name == source.name:
            name = f"{name}-target"
        targets.append(TransferSet(name, rs, extract(encoder, rs, **settings.extraction(layers=None))))
    result = transfer(
        source,
        targets,
        settings=settings,
        target_split=args.target_split,
        matrix=args.matrix,
        min_positives=args.min_positives,
        site=not args.no_site,
    )
    run = {"seed": settings.seed, "command": "transfer", "timings": {"total_s": time.perf_counter() - t0}}
    ident = dict(source.embeddings.provenance.get("encoder") or encoder.identity())
    report = Report(
        {"transfer": result},
        title=f"{encoder.name}: transfer from {source.name} to {', '.join(t.name for t in targets)}",
        subjects=[str(encoder.name).replace("/", "-")],
        context=report_context(records, {str(encoder.name).replace("/", "-"): ident}, run, {}),
    )
    with output.staged() as tmp:
        write_result(result, tmp)
        report.write_files(tmp / "report", formats)
    for r in result.tables["targets"]:
        print(
            f"{source.name} -> {r['target']}: macro AUROC in {r['macro_auroc_in']:.4f} [{r['in_ci_low']:.4f}, "
            f"{r['in_ci_high']:.4f}], out {r['macro_auroc_out']:.4f} [{r['out_ci_low']:.4f}, {r['out_ci_high']:.4f}], "
            f"gap {r['gap']:+.4f} [{r['gap_ci_low']:+.4f}, {r['gap_ci_high']:+.4f}] over {r['n_labels']} labels"
        )
    site = result.metrics.get("site")
    if site:
        lo, hi = site["macro_auroc_ci"]
        print(f"site predictability: AUROC {site['macro_auroc']:.4f} [{lo:.4f}, {hi:.4f}] (0.5 = chance)")
    print(f"-> {output.path('results.json')}")
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0
