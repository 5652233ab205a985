"""``probe --folds`` and ``probe --kind attentive``: the probe runs that are more than one fit on one
embedding (rotated folds; token sequences and the attentive head), beside :mod:`ecgprobe.cli.probe`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ecgprobe.cli import common
from ecgprobe.cli.probe import (
    ATTENTIVE_ENCODERS,
    _fmt_ci,
    _interval_opts,
    _records_and_embeddings,
    result_files,
    write_result,
)
from ecgprobe.exceptions import ConfigError


def _folds(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 3:
        raise ConfigError(
            f"--folds takes a number of folds >= 3 (or nothing: the dataset's own), got {text!r}"
        )
    return k


def cmd_folds(args: argparse.Namespace) -> int:
    """``probe --folds``: the linear probe over rotated patient-wise folds."""
    from ecgprobe.analyzers.repeated_splits import RepeatedSplits

    if args.kind != "linear" or args.layer is not None:
        raise ConfigError(
            "--folds rotates the linear probe on one embedding: drop --kind knn/both and --layer"
        )
    k = _folds(args.folds)
    output = common.check_output(args, result_files("folds"))
    records, emb = _records_and_embeddings(args, args.target)
    opts: dict[str, Any] = {"k": k, "ci_level": args.ci_level, "seed": args.seed, "device": args.device}
    opts.update(ci_method=args.ci_method, min_positives=args.min_positives, c_selection=args.c_selection)
    if args.n_resamples is not None:
        opts["n_resamples"] = args.n_resamples
    if args.cs:
        opts["Cs"] = args.cs
    result = RepeatedSplits(**opts).run(emb, records)
    with output.staged() as tmp:
        write_result(result, tmp)
    m = result.metrics
    lo, hi = m["reference_macro_ci"]
    name = "macro AUROC" if m["metric"] == "macro_auroc" else "R²"
    print(
        f"repeated splits: {name} {m['mean']:.4f} ± {m['sd']:.4f} (sd) over {m['n_rotations']} rotations of "
        f"{m['k']} {m['folds_source']} folds, on the {len(m['labels_common'])} labels evaluated in every one; "
        f"reference rotation (test fold {m['reference_fold']}): {m['reference']:.4f} on those labels, its probe's "
        f"headline {m['reference_macro']:.4f} [{lo:.4f}, {hi:.4f}] over {m['reference_n_labels_headline']} labels "
        f"-> {output.path('results.json')}"
    )
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0


def _token_embeddings(args: argparse.Namespace, records: Any) -> Any:
    """Token sequences for ``probe --kind attentive``: extracted with ``--max-tokens`` through the
    cache, or an embeddings folder saved from such an extraction.

    Raises:
        ConfigError: the encoder exposes no sequence, or the folder holds pooled embeddings.
    """
    from ecgprobe.extract import extract

    if getattr(args, "embeddings", None) is not None:
        emb = common.embeddings_from_args(args, records, layers=args.layer)
        if emb.token_shape is None:
            raise ConfigError(
                f"--embeddings {args.embeddings} holds pooled embeddings, not token sequences; --kind attentive "
                f"needs --encoder (one of {', '.join(ATTENTIVE_ENCODERS)}) or a folder saved from "
                "extract(..., tokens=N)"
            )
        return emb
    settings = common.settings_from_args(args)
    encoder = common.encoder_from_args(args)
    return extract(encoder, records, **settings.extraction(layers=args.layer), tokens=args.max_tokens)


def cmd_attentive(args: argparse.Namespace) -> int:
    """``probe --kind attentive``: the attentive probe and its paired comparison with the linear one."""
    from ecgprobe.analyzers import ANALYZERS

    if args.target:
        raise ConfigError("--target (regression) works with --kind linear only")
    output = common.check_output(args, result_files("attentive"))
    records = common.dataset_from_args(args)
    emb = _token_embeddings(args, records)
    opts = {**_interval_opts(args), "max_epochs": args.max_epochs, "patience": args.patience}
    if args.cs:
        opts["Cs"] = args.cs
    result = ANALYZERS.get("attentive_probe")(**opts).run(emb, records)
    with output.staged() as tmp:
        write_result(result, tmp)
    m = result.metrics
    print(
        f"attentive_probe: {_fmt_ci(m, 'macro_auroc')} over {m['n_labels_headline']} of "
        f"{len(m['labels_evaluated'])} labels ({m['n_tokens']} tokens x {m['token_dim']}, epoch "
        f"{m['best_epoch']} of {m['epochs_run']}; test n={m['n_test']}) -> {output.path('results.json')}"
    )
    lo, hi = m["difference_vs_linear_ci"]
    print(
        f"  vs linear probe on the mean tokens ({m['linear_macro_auroc']:.4f}): "
        f"{m['difference_vs_linear']:+.4f} [{lo:+.4f}, {hi:+.4f}]: {m['comparison']}"
    )
    for note in result.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0
