"""``ecgprobe attribute``: which embedding dimensions, leads and moments drive a probe's decisions.

Writes two results to ``--out``: ``probe_shap.json/.npz`` (exact SHAP of the linear probe over
embedding dimensions) and ``input_attribution.json/.npz`` (attributions of the encoder + probe
head to the input leads and time, with the model-randomisation sanity check), plus
``linear_probe.json/.npz`` when the probe is fitted here rather than given with ``--probe``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecgprobe.cli import common
from ecgprobe.exceptions import ConfigError

OUTPUTS = (
    "probe_shap.json",
    "probe_shap.npz",
    "input_attribution.json",
    "input_attribution.npz",
    "linear_probe.json",
    "linear_probe.npz",
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the attribute command."""
    p = sub.add_parser(
        "attribute",
        help="attributions: embedding dimensions (probe SHAP), leads and time (IG/GradientSHAP/lead Shapley)",
        description="Fit (or load) a linear probe on an encoder's embeddings, explain it exactly over the "
        "embedding dimensions, and attribute its logits to the input leads and time on a few example "
        "records per label. Writes probe_shap.json/.npz and input_attribution.json/.npz to --out.",
    )
    common.add_dataset_args(p)
    common.add_encoder_args(p, embeddings=False)
    g = p.add_argument_group("attribution")
    g.add_argument(
        "--probe",
        type=Path,
        metavar="RESULT",
        help="a saved linear_probe result (.json) fitted on these embeddings (default: fit one here with "
        "default settings and save it as linear_probe.json)",
    )
    g.add_argument(
        "--labels", help="comma-separated labels to explain (default: every label the probe fitted)"
    )
    g.add_argument(
        "--n-examples", type=common.positive_int, default=8, help="example records per label (default 8)"
    )
    g.add_argument(
        "--method",
        choices=("auto", "ig", "gradshap", "kernelshap"),
        default="auto",
        help="auto: ig for differentiable encoders, else kernelshap (exact lead Shapley values)",
    )
    g.add_argument(
        "--baseline",
        choices=("zeros", "mean", "smooth"),
        default="zeros",
        help="reference input: zeros, each lead's mean, or a low-pass copy (default zeros)",
    )
    g.add_argument(
        "--n-steps", type=common.positive_int, default=32, help="Integrated-Gradients steps (default 32)"
    )
    g.add_argument("--split", default="test", help="split the example records come from (default test)")
    g.add_argument("--no-sanity-check", action="store_true", help="skip the model-randomisation sanity check")
    g.add_argument(
        "--seed",
        type=common.non_negative_int,
        default=0,
        help="seed of example selection and sampling (default 0)",
    )
    common.add_extraction_args(p)
    common.add_output_args(p)
    p.set_defaults(handler=cmd_attribute)


def cmd_attribute(args: argparse.Namespace) -> int:
    """Run both attribution analyzers and save their results."""
    from ecgprobe.analyzers import Result
    from ecgprobe.analyzers.input_attribution import InputAttribution
    from ecgprobe.analyzers.probe_shap import ProbeShap

    output = common.check_output(args, OUTPUTS)
    records = common.dataset_from_args(args)
    probe = None
    if args.probe is not None:
        probe = Result.load(args.probe)
        if probe.kind != "linear_probe":
            raise ConfigError(f"--probe {args.probe} is a {probe.kind!r} result; pass a linear_probe result")
    encoder = common.encoder_from_args(args) if args.encoder else None  # created once, used twice
    emb = common.embeddings_from_args(args, records, encoder=encoder)
    fitted = probe is None
    if fitted:  # fit once, explain twice; saved so that the explained head is on disk
        from ecgprobe.analyzers._stats.heads import fit_probe

        probe = fit_probe({"seed": args.seed}, emb, records)
    labels = [s.strip() for s in args.labels.split(",") if s.strip()] if args.labels else None
    shap_res = ProbeShap(probe=probe, labels=labels, seed=args.seed).run(emb, records)
    encoder = encoder if encoder is not None else common.encoder_from_args(args)
    attr = InputAttribution(
        encoder=encoder,
        probe=probe,
        labels=labels,
        method=args.method,
        baseline=args.baseline,
        n_examples=args.n_examples,
        n_steps=args.n_steps,
        split=args.split,
        sanity_check=not args.no_sanity_check,
        seed=args.seed,
    ).run(emb, records)
    with output.staged() as tmp:
        if fitted:
            probe.save(tmp / "linear_probe")
        shap_res.save(tmp / "probe_shap")
        attr.save(tmp / "input_attribution")
    if not args.quiet:
        _print_summary(shap_res, attr)
        print(f"wrote probe_shap and input_attribution results to {output.folder}", file=sys.stderr)
    return 0


def _print_summary(shap_res, attr) -> None:
    rows = {r["label"]: r for r in shap_res.tables["labels"]}
    print(
        f"method {attr.metrics['method']}, baseline {attr.metrics['baseline']}, {attr.metrics['n_examples']} examples"
    )
    print(f"{'label':<24} {'top lead':>8} {'top dim':>12} {'top1 share':>10} {'eff. dims':>9}")
    for label in attr.metrics["labels"]:
        top = shap_res.top_dims(label)[0]
        r = rows[label]
        print(
            f"{label:<24} {attr.metrics['top_lead'].get(label, '-'):>8} {top['name']:>12} "
            f"{r['top1_frac']:>10.2f} {r['effective_dims']:>9.1f}"
        )
    if "sanity_spearman_lead_median" in attr.metrics:
        m = attr.metrics
        print(
            "sanity check (randomised encoder), median Spearman: lead importance "
            f"{_fmt(m['sanity_spearman_lead_median'])}, |attr| maps {_fmt(m['sanity_spearman_abs_median'])}, "
            f"signed maps {_fmt(m['sanity_spearman_signed_median'])}"
        )
    for note in attr.notes:
        print(f"note: {note}")


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"
