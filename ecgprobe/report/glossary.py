"""One sentence per metric, shown where the metric is shown (a reader should not need a paper)."""

from __future__ import annotations

from ecgprobe.report.blocks import Note

__all__ = ["GLOSSARY", "explain"]

GLOSSARY: dict[str, str] = {
    "auroc": "AUROC: the probability that a random positive record scores above a random negative one "
    "(0.5 = chance, 1 = perfect ranking).",
    "auprc": "AUPRC: area under the precision–recall curve; its chance level is the label's prevalence, "
    "so it is lower for rare labels.",
    "f1": "F1: the harmonic mean of precision and recall at the threshold chosen on validation.",
    "brier": "Brier score: the mean squared error of the predicted probabilities (0 is perfect; lower is better).",
    "ece": "ECE (expected calibration error): the average gap between predicted probability and observed "
    "frequency over probability bins (0 = perfectly calibrated).",
    "cka": "CKA (centred kernel alignment): similarity of two representations of the same records, "
    "invariant to rotation and isotropic scaling (1 = the same up to those).",
    "mutual_knn": "Mutual kNN overlap: the share of each record's k nearest neighbours that both "
    "embeddings agree on (chance k/(n−1)).",
    "procrustes": "Procrustes similarity: how well one centred, scaled embedding maps onto the other by "
    "the best rotation (1 = identical shape); the distance is what remains.",
    "effective_rank": "Effective rank (participation ratio): how many dimensions carry the variance, "
    "(Σλ)²/Σλ² of the covariance eigenvalues λ.",
    "trustworthiness": "Trustworthiness: how far the 2-D map's neighbours are true neighbours in the "
    "embedding (1 = every 2-D neighbour is a real one).",
    "purity": "kNN label purity: the share of a record's nearest neighbours that carry its label, "
    "against the label's prevalence (chance).",
    "gini": "Gini: how concentrated the probe's reliance is over embedding dimensions (0 = spread "
    "evenly, 1 = all on one).",
    "effective_dims": "Effective dims: the number of dimensions that would carry the same reliance if "
    "spread evenly (exp of the entropy of the shares).",
    "lead_share": "Lead share: a lead's part of the total absolute attribution of a label (1/L each "
    "when all leads matter equally).",
    "spearman": "Spearman ρ: rank correlation; here between the trained and the randomised encoder's "
    "attributions (high ρ = the explanation ignores what was learned).",
    "rankme": "RankMe: the entropy effective rank of the singular values of the standardised embedding "
    "(how many directions the records really spread over; at most the dimension).",
    "twonn": "TwoNN: the intrinsic dimension of the point cloud, from the ratio of each record's second "
    "to first nearest-neighbour distance (how many degrees of freedom the records vary in).",
    "isoscore": "IsoScore: how evenly the variance is spread over all directions (0 = one direction, "
    "1 = every direction alike).",
    "gap": "Gap: the group's macro AUROC minus that of the rest of the test set, on the labels "
    "evaluable in both, with a paired patient bootstrap.",
}


def explain(*keys: str) -> Note:
    """A note defining ``keys`` (see :data:`GLOSSARY`), one sentence each.

    Raises:
        KeyError: an unknown metric key.
    """
    return Note(" ".join(GLOSSARY[k] for k in keys))
