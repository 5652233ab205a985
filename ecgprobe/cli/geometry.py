"""``ecgprobe cka`` and ``ecgprobe umap``: representation geometry from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ecgprobe.cli import common
from ecgprobe.exceptions import ConfigError
from ecgprobe.settings import FINAL_LAYER, final_layer, parse_layers

COLOURS = ("label", "age", "sex")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the geometry commands."""
    p = sub.add_parser(
        "cka",
        help="CKA (and optionally mutual kNN / Procrustes) between two encoders, or layer by layer",
        description="Compare two encoders on the same records: linear or RBF CKA with a grouped-jackknife CI, for the "
        "official embeddings or every pair of layers. Each side comes from an encoder (extracted through the "
        "cache) or from an `ecgprobe extract` folder; records are matched by id. A dataset is needed to "
        "extract, and optional for two folders (then the folders must hold the same record ids).",
    )
    common.add_dataset_args(p, required=False)
    common.add_encoder_args(p, suffix="-a")
    common.add_encoder_args(p, suffix="-b")
    p.add_argument(
        "--layers",
        default=FINAL_LAYER,
        help="'embedding' (default), 'all', or comma-separated layer names, for both sides",
    )
    p.add_argument("--layers-a", default=None, help="layers of side A (overrides --layers)")
    p.add_argument("--layers-b", default=None, help="layers of side B (overrides --layers)")
    g = p.add_argument_group("CKA")
    g.add_argument("--kernel", choices=("linear", "rbf"), default="linear", help="kernel (default linear)")
    g.add_argument(
        "--biased",
        dest="debiased",
        action="store_false",
        help="the biased HSIC estimator (default: debiased CKA, whose interval covers the population value)",
    )
    # its own dest: 0 (no interval) is valid here, not for the run settings' bootstrap resamples
    g.add_argument(
        "--n-resamples",
        dest="jackknife",
        type=common.non_negative_int,
        default=200,
        help="> 0: a delete-a-group jackknife CI over patient groups; 0: none (default 200)",
    )
    # the option's former name, kept working for existing scripts
    g.add_argument(
        "--n-boot",
        dest="jackknife",
        type=common.non_negative_int,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    g.add_argument(
        "--ci-level", type=common.open_interval, default=0.95, help="confidence level (default 0.95)"
    )
    g.add_argument(
        "--seed", type=common.non_negative_int, default=0, help="seed of the jackknife grouping (default 0)"
    )
    g.add_argument(
        "--alignment",
        action="store_true",
        help="also compute mutual kNN overlap and Procrustes distance of the official embeddings",
    )
    g.add_argument(
        "--k", type=common.positive_int, default=10, help="neighbours for the mutual kNN overlap (default 10)"
    )
    common.add_extraction_args(p)
    common.add_output_args(p)
    p.set_defaults(handler=cmd_cka)

    p = sub.add_parser(
        "umap",
        help="UMAP projection with trustworthiness, silhouettes, kNN purity and effective ranks",
        description="Project one encoder's embeddings of a dataset to 2-D with UMAP (seeded; exact kNN graph) and "
        "write the coordinates, quantitative descriptors and scatter plots coloured by label, age or sex.",
    )
    common.add_dataset_args(p)
    common.add_encoder_args(p)
    p.add_argument("--layer", default=None, help="layer to project (default: the official embedding)")
    p.add_argument(
        "--color-by",
        default="label",
        help="comma-separated: label, age, sex (one PNG each; default label)",
    )
    g = p.add_argument_group("UMAP")
    g.add_argument(
        "--n-neighbors", type=common.positive_int, default=15, help="UMAP n_neighbors (default 15)"
    )
    g.add_argument("--min-dist", type=float, default=0.1, help="UMAP min_dist (default 0.1)")
    g.add_argument("--metric", default="euclidean", help="euclidean (default), cosine, ...")
    g.add_argument(
        "--seed",
        type=common.non_negative_int,
        default=0,
        help="seed (default 0; UMAP then runs on one thread)",
    )
    g.add_argument(
        "--pca-dims",
        type=common.positive_int,
        default=None,
        help="PCA to this many dims before UMAP (default: none)",
    )
    g.add_argument(
        "--max-records",
        type=common.positive_int,
        default=50_000,
        help="stratified subsample above this (default 50000)",
    )
    common.add_extraction_args(p)
    common.add_output_args(p)
    p.set_defaults(handler=cmd_umap)


def _match_by_id(a: Any, b: Any) -> Any:
    """Reorder side B's rows to side A's ids when both hold the same records (folders from elsewhere
    may list them in another order); a different set of ids is left for the analyzer to report."""
    ref = next(iter(a.values())) if isinstance(a, dict) else a

    def fix(e):
        return e.take(list(ref.ids)) if set(e.ids) == set(ref.ids) and len(e) == len(ref) else e

    return {k: fix(e) for k, e in b.items()} if isinstance(b, dict) else fix(b)


def cmd_cka(args: argparse.Namespace) -> int:
    """Compare two encoders (or two embedding folders) with CKA."""
    from ecgprobe.analyzers.alignment import Alignment
    from ecgprobe.analyzers.cka import CKA

    names = ["cka.json", "cka.npz"] + (["alignment.json", "alignment.npz"] if args.alignment else [])
    output = common.check_output(args, names)
    records = common.dataset_from_args(args) if args.dataset else None
    side_a = common.embeddings_from_args(
        args, records, layers=parse_layers(args.layers_a or args.layers, option="--layers-a"), suffix="-a"
    )
    side_b = common.embeddings_from_args(
        args, records, layers=parse_layers(args.layers_b or args.layers, option="--layers-b"), suffix="-b"
    )
    side_b = _match_by_id(side_a, side_b)
    res = CKA(
        kernel=args.kernel,
        debiased=args.debiased,
        n_resamples=args.jackknife,
        ci_level=args.ci_level,
        seed=args.seed,
    ).run(side_a, side_b, records)
    al = None
    if args.alignment:
        a, b = (final_layer(x) if isinstance(x, dict) else x for x in (side_a, side_b))
        al = Alignment(k=args.k, n_resamples=args.jackknife, ci_level=args.ci_level, seed=args.seed).run(
            a, b, records
        )
    with output.staged() as tmp:
        res.save(tmp / "cka.json")
        if al is not None:
            al.save(tmp / "alignment.json")
    if res.arrays["cka"].shape == (1, 1):
        m = res.metrics
        ci = f" [{m['cka_ci_low']:.3f}, {m['cka_ci_high']:.3f}]" if m.get("n_replicates") else ""
        print(
            f"CKA ({args.kernel}{', debiased' if args.debiased else ''}): {m['cka']:.4f}{ci}  n={m['n_records']}"
        )
    else:
        with _wide_pandas():
            print(res.matrix.round(3).to_string())
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    if al is not None:
        m = al.metrics
        print(
            f"mutual kNN overlap (k={args.k}): {m['mutual_knn']:.3f} (chance {m['mutual_knn_chance']:.3f}); "
            f"Procrustes distance {m['procrustes_distance']:.3f}"
        )
    print(f"wrote {output.path('cka.json')}", file=sys.stderr)
    return 0


def _wide_pandas():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 50)


def cmd_umap(args: argparse.Namespace) -> int:
    """Project one encoder's embeddings with UMAP and describe the space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ecgprobe.analyzers.projection import Projection
    from ecgprobe.report.plots import plot_projection

    colours = [c.strip() for c in args.color_by.split(",") if c.strip()]
    bad = [c for c in colours if c not in COLOURS]
    if bad or not colours:
        raise ConfigError(f"--color-by takes {list(COLOURS)} (comma-separated), got {args.color_by!r}")
    pngs = [f"projection_{c}.png" for c in colours]
    output = common.check_output(args, ["projection.json", "projection.npz", *pngs])
    records = common.dataset_from_args(args)
    emb = common.embeddings_from_args(args, records, layers=args.layer)
    res = Projection(
        n_neighbors=args.n_neighbors,
        min_dist=args.min_dist,
        metric=args.metric,
        seed=args.seed,
        pca_dims=args.pca_dims,
        max_records=args.max_records,
    ).run(emb, records)
    with output.staged() as tmp:
        res.save(tmp / "projection.json")
        for colour, png in zip(colours, pngs):
            fig, ax = plt.subplots(figsize=(7.5, 5.5))
            try:
                plot_projection(res, color_by=colour, ax=ax)
                fig.tight_layout()
                fig.savefig(tmp / png, dpi=130)
            finally:
                plt.close(fig)
    path = output.path("projection.json")
    m = res.metrics
    print(
        f"{m['n_projected']} records projected; trustworthiness (k={m['trust_k']}) {m['trustworthiness']:.3f}; "
        f"effective rank {m['participation_ratio_standardised']:.1f} standardised, "
        f"{m['participation_ratio']:.1f} raw; "
        f"mean cosine {m['mean_cosine']:.3f}"
    )
    if res.tables["labels"]:
        cols = [
            "label",
            "n_pos",
            "silhouette_embedding",
            "purity_embedding",
            "purity_projection",
            "purity_chance",
        ]
        with _wide_pandas():
            print(res.table("labels")[cols].round(3).to_string(index=False))
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {path} and {', '.join(pngs)}", file=sys.stderr)
    return 0
