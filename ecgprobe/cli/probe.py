"""``ecgprobe probe`` (linear, kNN and attentive probes) and ``ecgprobe scarcity`` (data-scarcity curve).

Both take a dataset (labels and splits) and either an encoder (embeddings extracted through the
cache) or ``--embeddings DIR`` (an ``ecgprobe extract`` folder, or any folder with
``embeddings.npy`` + ``ids.npy``, matched to the dataset's records by id). They write
``results.json`` (+ ``results.npz`` with the arrays) and one CSV per result table into ``--out``
(``--kind both`` writes ``linear/`` and ``knn/`` sub-folders), and refuse to overwrite without
``--force``. ``--kind attentive`` extracts token sequences (``--max-tokens``) from encoders that
expose one (:data:`ATTENTIVE_ENCODERS`) and trains the attentive probe, compared with the linear
probe on the mean of the same tokens by a paired interval.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from ecgprobe.cli import common
from ecgprobe.exceptions import ConfigError

__all__ = ["ATTENTIVE_ENCODERS", "register", "result_files", "write_result"]

_KINDS = {"linear": "linear_probe", "knn": "knn_probe", "attentive": "attentive_probe"}
#: The public encoders that expose a token sequence (card field ``sequence``), written out so that
#: building the parser imports no model code; a test keeps it equal to the registry's list.
ATTENTIVE_ENCODERS = ("ecg-fm", "hubert-ecg", "random-resnet1d")
#: The tables each analysis may write as ``<table>.csv`` (declared before any work).
_TABLES = {
    "classification": ("per_label", "reliability"),
    "regression": ("per_target",),
    "scarcity": ("curve", "per_label", "runs"),
    "layers": ("atlas", "comparison"),
    "folds": ("folds", "per_label"),
    "attentive": ("per_label", "reliability", "vs_linear"),
}


def result_files(tables: str, prefix: str = "") -> list[str]:
    """What :func:`write_result` writes for a result with ``_TABLES[tables]``, under ``prefix``."""
    return [f"{prefix}{n}" for n in ("results.json", "results.npz", *(f"{t}.csv" for t in _TABLES[tables]))]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    common.add_dataset_args(p)
    common.add_encoder_args(p)
    p.add_argument("--layer", default=None, help="layer of the embeddings to use (default: the embedding)")
    common.add_extraction_args(p)
    g = p.add_argument_group("probe")
    g.add_argument(
        "--cs", type=_floats, default=None, metavar="C,C,...", help="C grid (default 1e-4..1e2, 7 values)"
    )
    g.add_argument(
        "--c-selection",
        choices=("per_label", "shared"),
        default="per_label",
        help="C per label (default) or shared",
    )
    g.add_argument(
        "--n-resamples",
        type=common.positive_int,
        default=None,
        help="bootstrap resamples for the intervals (default: the analyzer's, 1000 for the probes)",
    )
    g.add_argument(
        "--ci-level", type=common.open_interval, default=0.95, help="confidence level (default 0.95)"
    )
    g.add_argument(
        "--ci-method",
        choices=("percentile", "bca"),
        default="percentile",
        help="bootstrap interval: percentile (default) or bca (better coverage with few positives)",
    )
    g.add_argument(
        "--min-positives",
        type=common.non_negative_int,
        default=10,
        help="labels with fewer positive (or negative) test patients are flagged and left out of the "
        "headline macro (default 10; 0 keeps all)",
    )
    g.add_argument(
        "--seed", type=common.non_negative_int, default=0, help="seed of every random step (default 0)"
    )
    common.add_output_args(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the probe and scarcity commands."""
    p = sub.add_parser(
        "probe",
        help="linear and/or kNN probe of embeddings: AUROC/AUPRC/F1/calibration with patient-bootstrap CIs",
        description="Fit probes on the train split, tune on val, evaluate once on test. Writes results.json "
        "(+ .npz) and CSV tables.",
    )
    _common(p)
    p.add_argument(
        "--kind",
        choices=("linear", "knn", "both", "attentive"),
        default="linear",
        help="probe(s) to run (default linear); attentive: an attention-pooling head over the token "
        f"sequence (encoders that expose one: {', '.join(ATTENTIVE_ENCODERS)}), trained with early "
        "stopping on val and compared with the linear probe by a paired interval (slow on CPU)",
    )
    g = p.add_argument_group("attentive probe (--kind attentive)")
    g.add_argument(
        "--max-tokens",
        type=common.positive_int,
        default=32,
        help="tokens per record, averaged along time down to this many (default 32; part of the cache key)",
    )
    g.add_argument(
        "--max-epochs", type=common.positive_int, default=50, help="training epochs at most (default 50)"
    )
    g.add_argument(
        "--patience",
        type=common.positive_int,
        default=5,
        help="epochs without a validation macro-AUROC improvement before stopping (default 5)",
    )
    p.add_argument(
        "--target",
        default=None,
        help="regression instead of the labels: a physiology quantity measured from the signals "
        "(heart_rate, pr, qrs, qt, qtc, qtc_bazett, qtc_fridericia, axis) or a metadata column, e.g. age "
        "(meta:NAME forces the metadata column of that name)",
    )
    g = p.add_argument_group("physiology and layers")
    g.add_argument(
        "--layers",
        default=None,
        metavar="all|A,B,...",
        help="probe every extracted layer (all, or a comma list): macro AUROC and physiology R² per layer "
        "(the physiology atlas), best intermediate layer vs the final one with a paired interval",
    )
    g.add_argument(
        "--quantities",
        default=None,
        metavar="Q,Q,...",
        help="physiology quantities of --layers (default heart_rate,pr,qrs,qt,qtc,axis; 'none': labels only)",
    )
    g.add_argument(
        "--ptbxl-plus",
        type=Path,
        default=None,
        metavar="DIR",
        help="PTB-XL+ folder: use its published 12SL/Uni-G/ECGDeli values as the physiology reference",
    )
    g.add_argument(
        "--ptbxl-plus-source",
        choices=("12sl", "unig", "ecgdeli"),
        default="12sl",
        help="which PTB-XL+ table (default 12sl)",
    )
    g = p.add_argument_group("repeated splits")
    g.add_argument(
        "--folds",
        nargs="?",
        const="auto",
        default=None,
        metavar="K",
        help="rotate the test fold over K patient-wise folds (C chosen on the fold before it) and report the "
        "mean and sd across rotations beside the bootstrap interval; without K: the dataset's strat_fold "
        "(PTB-XL: 10 folds, rotation 10 = the recommended split), else 10 seeded stratified folds",
    )
    p.add_argument(
        "--ks", type=_ints, default=None, metavar="K,K,...", help="kNN k grid (default 1,3,5,10,20,50,100)"
    )
    p.add_argument(
        "--metric", choices=("cosine", "euclidean"), default="cosine", help="kNN metric (default cosine)"
    )
    p.set_defaults(handler=cmd_probe)

    p = sub.add_parser(
        "scarcity",
        help="data-scarcity curve: linear-probe AUROC vs fraction of labelled training data",
        description="Fit the linear probe on nested, stratified, patient-wise subsets of the train split "
        "(several seeds) and evaluate on the fixed test split.",
    )
    _common(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--fractions",
        type=_floats,
        default=None,
        help="training fractions (default 0.01,0.02,0.05,0.1,0.25,0.5,1)",
    )
    g.add_argument(
        "--samples-per-class", type=_ints, default=None, help="minimum positives per label, e.g. 5,10,50"
    )
    p.add_argument(
        "--seeds", type=common.positive_int, default=5, help="independent subset draws (default 5)"
    )
    p.add_argument("--subsample-val", action="store_true", help="subsample the validation split alike")
    g = p.add_argument_group("study across encoders")
    g.add_argument(
        "--encoders",
        default=None,
        metavar="A,B,...",
        help="a study over these encoders (same subsets for all): overlaid curves, label-efficiency table, "
        "report.html/.pdf, results.json (the study) and scarcity.csv",
    )
    g.add_argument("--format", default="html,pdf", help="report formats with --encoders (default html,pdf)")
    p.set_defaults(handler=cmd_scarcity)


def _csv_value(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return ";".join(str(x) for x in v)
    if isinstance(v, dict):
        return ";".join(f"{k}: {x}" for k, x in v.items())
    return v


def write_result(result: Any, out: Path) -> Path:
    """Save ``results.json`` (+ ``.npz``) and one ``<table>.csv`` per table into ``out``."""
    path = result.save(out / "results.json")
    for name, rows in result.tables.items():
        if not rows:
            continue
        with (out / f"{name}.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return path


def _with_target(args: argparse.Namespace, records: Any, target: str) -> Any:
    """``records`` regressing ``target``: a physiology quantity (measured, cached) or a metadata column."""
    from ecgprobe.data.physiology import QUANTITIES, with_physiology_target

    if target.startswith("meta:"):
        return records.with_meta_target(target[len("meta:") :])
    if target in QUANTITIES:
        settings = common.settings_from_args(args)
        return with_physiology_target(
            records,
            target,
            cache_dir=settings.cache_dir,
            reference=getattr(args, "ptbxl_plus", None),
            reference_source=getattr(args, "ptbxl_plus_source", "12sl"),
        )
    return records.with_meta_target(target)


def _records_and_embeddings(args: argparse.Namespace, target: str | None = None) -> tuple[Any, Any]:
    records = common.dataset_from_args(args)
    if target:
        records = _with_target(args, records, target)
    return records, common.embeddings_from_args(args, records, layers=args.layer)


def _fmt_ci(metrics: dict, key: str) -> str:
    lo, hi = metrics.get(f"{key}_ci") or (float("nan"), float("nan"))
    lo, hi = (float("nan") if lo is None else lo), (float("nan") if hi is None else hi)
    return f"{key} {metrics[key]:.4f} [{lo:.4f}, {hi:.4f}]"


def _interval_opts(args: argparse.Namespace) -> dict[str, Any]:
    """The probes' shared settings from the command line: intervals, seed and device."""
    opts: dict[str, Any] = {
        "ci_level": args.ci_level,
        "ci_method": args.ci_method,
        "min_positives": args.min_positives,
        "seed": args.seed,
        "device": args.device,
    }
    if args.n_resamples is not None:
        opts["n_resamples"] = args.n_resamples
    return opts


def cmd_probe(args: argparse.Namespace) -> int:
    """Run the probe(s) and write their results."""
    from ecgprobe.analyzers import ANALYZERS

    if args.layers is not None:
        return cmd_layers(args)
    if args.folds is not None:
        from ecgprobe.cli.probe_runs import cmd_folds

        return cmd_folds(args)
    if args.kind == "attentive":
        from ecgprobe.cli.probe_runs import cmd_attentive

        return cmd_attentive(args)
    kinds = ["linear", "knn"] if args.kind == "both" else [args.kind]
    if args.target and "knn" in kinds:
        raise ConfigError("--target (regression) works with --kind linear only")
    sub = {k: (f"{k}/" if len(kinds) > 1 else "") for k in kinds}
    tables = "regression" if args.target else "classification"
    output = common.check_output(args, [f for k in kinds for f in result_files(tables, sub[k])])
    records, emb = _records_and_embeddings(args, args.target)
    shared = _interval_opts(args)
    results = {}
    for k in kinds:
        opts = dict(shared)
        if k == "linear":
            opts["c_selection"] = args.c_selection
            if args.cs:
                opts["Cs"] = args.cs
        else:
            opts["metric"] = args.metric
            if args.ks:
                opts["ks"] = args.ks
        results[k] = ANALYZERS.get(_KINDS[k])(**opts).run(emb, records)
    with output.staged() as tmp:  # both probes or neither
        for k, result in results.items():
            write_result(result, tmp / sub[k])
    for k, result in results.items():
        path = output.path(f"{sub[k]}results.json")
        m = result.metrics
        if m.get("task") == "regression":
            line = ", ".join(_fmt_ci(m, key) for key in ("mae", "rmse", "r2"))
        else:
            line = f"{_fmt_ci(m, 'macro_auroc')} over {m['n_labels_headline']} of {len(m['labels_evaluated'])} labels"
        print(f"{_KINDS[k]}: {line} (test n={m['n_test']}, {m['bootstrap_unit']} bootstrap) -> {path}")
        for note in result.notes:
            print(f"  note: {note}", file=sys.stderr)
    return 0


def cmd_layers(args: argparse.Namespace) -> int:
    """``probe --layers``: the layer-by-layer probe (labels and physiology) and its atlas."""
    from ecgprobe.analyzers import ANALYZERS
    from ecgprobe.settings import parse_layers

    if args.kind != "linear" or args.layer is not None:
        raise ConfigError("--layers runs the linear probe on every layer: drop --kind knn/both and --layer")
    spec = parse_layers(args.layers, option="--layers")
    if spec is None or (spec != "all" and len(spec) < 2):
        raise ConfigError(f"--layers {args.layers!r} names one layer; use 'all' or at least two, e.g. a,b")
    quantities = _quantities(args)
    output = common.check_output(args, result_files("layers"))
    records = common.dataset_from_args(args)
    settings = common.settings_from_args(args)
    layers = common.embeddings_from_args(args, records, settings, layers=spec)
    opts: dict[str, Any] = {
        "quantities": quantities,
        "labels": args.target is None,
        "cache_dir": None if settings.cache_dir is None else str(settings.cache_dir),
        "reference": None if args.ptbxl_plus is None else str(args.ptbxl_plus),
        "reference_source": args.ptbxl_plus_source,
        **_interval_opts(args),
    }
    if args.cs:
        opts["Cs"] = args.cs
    result = ANALYZERS.get("layer_probe")(**opts).run(layers, records)
    with output.staged() as tmp:
        write_result(result, tmp)
    m = result.metrics
    for cmp in result.tables["comparison"]:
        line = f"{cmp['row']}: best layer {m['best_layer'].get(cmp['row'])}"
        if cmp.get("intermediate_layer"):
            line += (
                f"; {cmp['intermediate_layer']} - {cmp['final_layer']} = {cmp['difference']:+.4f} "
                f"[{cmp['ci_low']:+.4f}, {cmp['ci_high']:+.4f}] ({cmp['metric']}, {cmp['verdict']})"
            )
        print(line)
    print(
        f"layer_probe: {len(m['layers'])} layers x {len(m['rows'])} rows (test n={m['n_test']}) -> {output.path('results.json')}"
    )
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0


def _quantities(args: argparse.Namespace) -> tuple[str, ...]:
    from ecgprobe.analyzers.layer_probe import DEFAULT_QUANTITIES
    from ecgprobe.data.physiology import QUANTITIES, check_quantity
    from ecgprobe.settings import split_list

    if args.target is not None:
        if args.target not in QUANTITIES:
            raise ConfigError(f"--layers with --target takes a physiology quantity ({', '.join(QUANTITIES)})")
        if args.quantities is not None:
            raise ConfigError("pass either --target or --quantities with --layers, not both")
        return (args.target,)
    if args.quantities is None:
        return DEFAULT_QUANTITIES
    if args.quantities.strip() == "none":
        return ()
    return tuple(check_quantity(q) for q in split_list(args.quantities, option="--quantities"))


def cmd_scarcity(args: argparse.Namespace) -> int:
    """Run the scarcity curve and write its result."""
    from ecgprobe.analyzers import ANALYZERS

    if not args.encoders:
        output = common.check_output(args, result_files("scarcity"))
        records, emb = _records_and_embeddings(args)
    opts: dict[str, Any] = {
        "n_seeds": args.seeds,
        "seed": args.seed,
        "subsample_val": args.subsample_val,
        "c_selection": args.c_selection,
        "ci_level": args.ci_level,
        "ci_method": args.ci_method,
        "min_positives": args.min_positives,
        "device": args.device,
    }
    if args.fractions:
        opts["fractions"] = args.fractions
    if args.samples_per_class:
        opts["samples_per_class"] = args.samples_per_class
    if args.cs:
        opts["Cs"] = args.cs
    if args.n_resamples is not None:
        opts["n_resamples"] = args.n_resamples
    if args.encoders:
        from ecgprobe.cli.report import scarcity_study

        return scarcity_study(args, opts)
    result = ANALYZERS.get("scarcity")(**opts).run(emb, records)
    with output.staged() as tmp:
        write_result(result, tmp)
    path = output.path("results.json")
    m = result.metrics
    for row in result.tables["curve"]:
        print(
            f"x={row['x']:g}: macro AUROC {row['macro_auroc_mean']:.4f} "
            f"[{row['macro_auroc_ci_low']:.4f}, {row['macro_auroc_ci_high']:.4f}] (n_train {row['n_train_mean']:.0f})"
        )
    key = "fraction_for_95pct" if m["mode"] == "fraction" else "samples_for_95pct"
    print(
        f"full {m['full_macro_auroc']:.4f}; {key} {m[key]}; normalised AUC {m['normalised_auc']:.4f} -> {path}"
    )
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0
