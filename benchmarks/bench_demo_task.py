"""The synthetic ``demo`` task: does each planted finding show with the demo's encoders and analyzers?

For ``load_dataset("synthetic", task="demo", n_records=N, seed=S)`` and each reference encoder
(``handcrafted``, ``random-resnet1d``), measured in one run:

1. accuracy: the linear probe's test AUROC per label with patient-bootstrap CIs (target: every
   label of ``handcrafted`` within 0.7-0.95, none saturated);
2. subgroup effect: ``subgroups`` gaps by sex and age band (target: the ``sex = female`` gap's
   interval below 0 for ``handcrafted``), and the per-label AUROC by sex of the two planted labels;
3. confounder: site alone as a score for ``afib`` (AUROC); site decodability (a linear probe for
   ``site = B`` from the embedding); the ``afib`` probe's AUROC pooled vs within each site; and a
   probe trained on site-A records only, tested on each site.

Usage: python benchmarks/bench_demo_task.py [--n 400] [--seed 0] [--encoders handcrafted,random-resnet1d]
       [--resamples 200] [--json out.json]   (``openecg-codec-3lead``: the demo's 3-lead codec)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import roc_auc_score

import ecgprobe
from ecgprobe.analyzers import ANALYZERS

PLANTED_SEX_LABELS = ("st_elevation", "lvh")
#: Encoder names the benchmark accepts beyond the registered ones: the demo's variants.
VARIANTS = {"openecg-codec-3lead": ("openecg-codec", {"leads": "I,II,V2"})}


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def _probe(emb, records, resamples: int):
    return ANALYZERS.get("linear_probe")(n_resamples=resamples).run(emb, records)


def _test_frame(probe, records):
    ids = np.asarray(probe.arrays["test_ids"], dtype=str)
    labels = list(probe.metrics["labels_fitted"])
    meta = records.meta.reindex(ids)
    return ids, labels, meta, np.asarray(probe.arrays["test_y"]), np.asarray(probe.arrays["test_scores"])


def confounder(emb, records, probe, resamples: int) -> dict:
    """Site-only AUROC, site decodability, pooled vs within-site AUROC, and site-A-trained transfer."""
    _, labels, meta, y, s = _test_frame(probe, records)
    j = labels.index("afib")
    site_b = (meta["site"] == "B").to_numpy()
    out = {
        "afib_prevalence": {
            site: float(
                records.y[(records.meta["site"] == site).to_numpy(), records.label_names.index("afib")].mean()
            )
            for site in ("A", "B")
        },
        "afib_auroc_site_alone_test": _auc(y[:, j], site_b.astype(float)),
        "afib_auroc_pooled": _auc(y[:, j], s[:, j]),
        "afib_auroc_within_A": _auc(y[~site_b, j], s[~site_b, j]),
        "afib_auroc_within_B": _auc(y[site_b, j], s[site_b, j]),
    }
    site_y = (records.meta["site"] == "B").to_numpy(dtype=np.uint8)[:, None]
    site_probe = _probe(emb, records.with_labels(["site_b"], site_y, "multilabel"), resamples)
    out["site_decodability_auroc"] = float(site_probe.metrics["macro_auroc_all"])
    # a probe that never saw site B in training: train/val of site A, test of both sites
    keep = (records.meta["site"] == "A").to_numpy() | (records.split == "test")
    sub = records.subset(np.flatnonzero(keep))
    pa = _probe(emb.take(list(sub.ids)), sub, resamples)
    _, la, ma, ya, sa = _test_frame(pa, sub)
    ja, b = la.index("afib"), (ma["site"] == "B").to_numpy()
    out["site_A_trained_afib_auroc_on_A"] = _auc(ya[~b, ja], sa[~b, ja])
    out["site_A_trained_afib_auroc_on_B"] = _auc(ya[b, ja], sa[b, ja])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--encoders", default="handcrafted,random-resnet1d")
    ap.add_argument("--resamples", type=int, default=200)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    records = ecgprobe.load_dataset("synthetic", task="demo", n_records=args.n, seed=args.seed)
    report: dict = {"n": args.n, "seed": args.seed, "load_s": round(time.perf_counter() - t0, 2)}
    print(
        f"{len(records)} records, {len(set(records.patient_ids))} patients, splits {records.split_sizes()}, "
        f"generated in {report['load_s']} s"
    )
    for name in args.encoders.split(","):
        t1 = time.perf_counter()
        registered, options = VARIANTS.get(name, (name, {}))
        emb = ecgprobe.extract(ecgprobe.create_encoder(registered, **options), records, progress=False)
        t_extract = time.perf_counter() - t1
        probe = _probe(emb, records, args.resamples)
        rows = probe.table("per_label").to_dict("records")
        print(
            f"\n== {name}: extraction {t_extract:.1f} s; macro AUROC {probe.metrics['macro_auroc']:.3f} "
            f"{np.round(probe.metrics['macro_auroc_ci'], 3).tolist()} ({probe.metrics['n_test_patients']} test patients)"
        )
        for r in rows:
            print(
                f"  {r['label']:14s} {r['auroc']:.3f} [{r['auroc_ci_low']:.3f}, {r['auroc_ci_high']:.3f}]  "
                f"test patients +{r['n_test_pos_patients']}/-{r['n_test_neg_patients']}{'  †' if r['flagged'] else ''}"
            )
        sg = ANALYZERS.get("subgroups")(probe=probe, n_resamples=300).run(emb, records)
        groups = sg.table("groups").to_dict("records")
        for g in groups:
            print(
                f"  {g['attribute']} = {g['group']:7s} n={g['n_records']:4d}  AUROC {g['macro_auroc']:.3f}  "
                f"gap {g['gap']:+.3f} [{g['gap_ci_low']:+.3f}, {g['gap_ci_high']:+.3f}]"
            )
        per = sg.table("per_label")
        for lab in PLANTED_SEX_LABELS:
            sel = per[(per["attribute"] == "sex") & (per["label"] == lab)]
            print(
                "  "
                + lab
                + ": "
                + ", ".join(
                    f"{r.group} {r.auroc:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for r in sel.itertuples()
                )
            )
        conf = confounder(emb, records, probe, args.resamples)
        print(
            "  confounder: "
            + ", ".join(f"{k} {v if isinstance(v, dict) else round(v, 3)}" for k, v in conf.items())
        )
        report[name] = {
            "extract_s": round(t_extract, 2),
            "per_label": {r["label"]: [r["auroc"], r["auroc_ci_low"], r["auroc_ci_high"]] for r in rows},
            "groups": groups,
            "confounder": conf,
        }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
