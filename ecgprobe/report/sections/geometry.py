"""Latent geometry: the UMAP map and the numbers that say how far to trust it (``projection``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ecgprobe.analyzers.base import Result
from ecgprobe.report import plots
from ecgprobe.report.base import Finding, result_finding, result_section
from ecgprobe.report.blocks import Block, Bullets, Figure, KeyValues, Note, Paragraph, Table, fmt
from ecgprobe.report.document import Report
from ecgprobe.report.figures import plot_figure, render_png

#: Trustworthiness below this: the 2-D map misplaces many neighbourhoods (rule threshold).
TRUST_LOW = 0.90


def color_options(res: Result) -> list[str]:
    """What the projection can be coloured by (labels always; age and sex when stored)."""
    return ["label"] + [k for k in ("age", "sex") if k in res.arrays]


def maps_figure(res: Result, caption: str) -> Figure:
    """The projection coloured by label, age and sex, side by side."""
    options = color_options(res)

    def draw(fig: Any) -> None:
        for ax, how in zip(fig.subplots(1, len(options), squeeze=False)[0], options):
            plots.plot_projection(res, color_by=how, ax=ax)

    return Figure(
        render_png(draw, size=(3.6 * len(options), 5.2)),
        caption=caption,
        alt="UMAP scatter plots coloured by " + ", ".join(options),
    )


#: One sentence per descriptor, shown wherever the descriptors are (keys: the row names).
DESCRIPTOR_HELP: dict[str, str] = {
    "trustworthiness of the 2-D map": (
        "The share of the map's neighbourhoods that are neighbourhoods in the full space too (1 = every 2-D "
        "neighbour is a true neighbour; below 0.9 clusters in the map may be artefacts)."
    ),
    "effective rank, standardised features": (
        "How many independent directions the embedding spans, with every feature scaled to unit variance "
        "(participation ratio of the correlation matrix), so that the features' units do not matter."
    ),
    "effective rank, raw features": (
        "The same count on the features in the units the encoder emits: it is dominated by the features with "
        "the largest scale, so a value near 1 can mean one large-valued feature rather than a collapsed space."
    ),
    "entropy effective rank, standardised": (
        "A second count of the directions of the standardised features, exp of the entropy of the normalised "
        "eigenvalues, less sensitive than the participation ratio to the largest eigenvalue."
    ),
    "mean cosine similarity between records": (
        "The average cosine between two records' embeddings: near 0 the vectors point every way, near 1 they "
        "share a common direction (it depends on the embeddings' offset, not on their scale)."
    ),
    "variance kept by the PCA pre-projection": (
        "The share of the variance that the principal axes passed to UMAP retain."
    ),
}


def descriptor_rows(res: Result) -> list[tuple[str, str]]:
    """The projection's quantitative descriptors, in words (keys of :data:`DESCRIPTOR_HELP`).

    Results made before the standardised effective ranks existed show their raw ranks only.
    """
    m = res.metrics
    dim = len(res.arrays.get("explained_variance_ratio", []))

    def of(value: object, dims: object) -> str:
        return f"{fmt(value, 1)} of {dims} dimensions" if dims else fmt(value, 1)

    rows = [
        ("records projected", f"{fmt(m.get('n_projected'))} of {fmt(m.get('n_total'))}"),
        ("trustworthiness of the 2-D map", f"{fmt(m.get('trustworthiness'))} (k = {fmt(m.get('trust_k'))})"),
    ]
    if m.get("participation_ratio_standardised") is not None:
        rows.append(
            (
                "effective rank, standardised features",
                of(m["participation_ratio_standardised"], m.get("n_varying_features") or dim),
            )
        )
    rows.append(("effective rank, raw features", of(m.get("participation_ratio"), dim)))
    if m.get("entropy_rank_standardised") is not None:
        rows.append(("entropy effective rank, standardised", fmt(m["entropy_rank_standardised"], 1)))
    rows.append(("mean cosine similarity between records", fmt(m.get("mean_cosine"))))
    if m.get("pca_retained_variance") is not None:
        rows.append(("variance kept by the PCA pre-projection", fmt(m["pca_retained_variance"])))
    return rows


def descriptor_help(rows: list[tuple[str, str]]) -> Bullets:
    """One sentence for each descriptor among ``rows``."""
    return Bullets(
        tuple(f"{name}: {DESCRIPTOR_HELP[name]}" for name, _ in rows if name in DESCRIPTOR_HELP),
        title="What the descriptors say",
    )


def purity_table(res: Result) -> Table:
    """Per label: prevalence, kNN label purity (embedding vs 2-D map vs chance), silhouette."""
    rows = sorted(res.tables.get("labels", []), key=lambda r: -(r.get("purity_embedding") or 0))
    return Table(
        (
            "label",
            "positives",
            "kNN purity (embedding)",
            "kNN purity (2-D map)",
            "chance",
            "silhouette (embedding)",
        ),
        tuple(
            (
                r["label"],
                fmt(r.get("n_pos")),
                fmt(r.get("purity_embedding")),
                fmt(r.get("purity_projection")),
                fmt(r.get("purity_chance")),
                fmt(r.get("silhouette_embedding")),
            )
            for r in rows
        ),
        caption="Label purity: the share of a positive record's nearest neighbours that are positive too",
    )


@result_section(
    "geometry",
    kind="projection",
    title="Latent geometry",
    order=50,
    lead="How is the embedding space organised: do records with the same label sit together, and how many directions carry variance?",
)
def render(report: Report, res: Result) -> list[Block]:
    umap_params = res.params.get("umap", {})
    rows = descriptor_rows(res)
    blocks: list[Block] = [
        Paragraph(
            f"UMAP (n_neighbors {fmt(umap_params.get('n_neighbors', res.params.get('n_neighbors')))}, min_dist "
            f"{umap_params.get('min_dist', res.params.get('min_dist'))}, {umap_params.get('metric', res.params.get('metric', ''))} metric, seed "
            f"{res.seed if res.seed is not None else res.params.get('seed')}). A 2-D map distorts distances: read it with the "
            "trustworthiness and the purities below, which are measured in the full embedding space."
        ),
        maps_figure(
            res,
            "UMAP of the embeddings coloured by label (single positive label; grey: none, other or several), age and sex.",
        ),
        KeyValues(tuple(rows), caption="Descriptors of the space"),
        descriptor_help(rows),
    ]
    if "explained_variance_ratio" in res.arrays:
        blocks.append(
            plot_figure(
                plots.plot_spectrum,
                res,
                size=(6.0, 3.2),
                caption="PCA spectrum of the embeddings (first 100 components): explained variance ratio and its cumulative sum.",
                alt="Line chart of the PCA explained variance ratio.",
                width=0.85,
            )
        )
    if res.tables.get("labels"):
        blocks.append(purity_table(res))
    blocks += [Note(n) for n in res.notes]
    return blocks


@result_finding("geometry", kind="projection", order=50)
def rule_geometry(report: Report, res: Result) -> Iterator[Finding]:
    m = res.metrics
    dim = len(res.arrays.get("explained_variance_ratio", []))
    pr_std, pr = m.get("participation_ratio_standardised"), m.get("participation_ratio")
    if pr_std is not None:
        yield Finding(
            f"With every feature at unit variance the embedding spans an effective rank of {fmt(pr_std, 1)} of its "
            f"{m.get('n_varying_features') or dim} varying dimensions (participation ratio; {fmt(pr, 1)} on the raw "
            "features, whose largest-scale features dominate it).",
            "info",
            "geometry",
            "projection.metrics.participation_ratio_standardised",
        )
    elif pr is not None and dim:
        yield Finding(
            f"The embedding's variance spreads over an effective rank of {fmt(pr, 1)} of its {dim} dimensions "
            "(participation ratio of the raw features: dominated by the features with the largest scale).",
            "info",
            "geometry",
            "projection.metrics.participation_ratio",
        )
    trust = m.get("trustworthiness")
    if trust is not None and trust < TRUST_LOW:
        yield Finding(
            f"The 2-D UMAP map is not trustworthy ({fmt(trust)} < {TRUST_LOW}): read clusters in it with caution.",
            "bad",
            "geometry",
            "projection.metrics.trustworthiness",
        )
    rows = [
        r
        for r in res.tables.get("labels", [])
        if r.get("purity_embedding") is not None and r.get("purity_chance")
    ]
    if rows:
        lift = sorted(rows, key=lambda r: -(r["purity_embedding"] / r["purity_chance"]))
        best, worst = lift[0], lift[-1]
        yield Finding(
            f"Relative to chance, nearest-neighbour label purity is highest for {best['label']} ({fmt(best['purity_embedding'])}, "
            f"{best['purity_embedding'] / best['purity_chance']:.1f}× chance) and lowest for {worst['label']} "
            f"({fmt(worst['purity_embedding'])}, {worst['purity_embedding'] / worst['purity_chance']:.1f}× chance).",
            "info",
            "geometry",
            "projection.tables.labels",
        )
