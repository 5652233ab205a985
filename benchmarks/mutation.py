"""Mutation check: plant known bugs in the scientific core and count how many the tests catch.

Each mutation is one text substitution named by a snippet that must occur exactly once in its
file (the script stops before running anything when a snippet is missing or ambiguous, so the
list stays honest as the code evolves). A mutant is a temporary copy of ``ecgprobe/`` and
``tests/`` with the substitution applied — the working tree is never edited — on which only the
test files that should catch it run, stopping at the first failure (``-x``), under a timeout.

A mutant is *killed* when a test fails, *survives* when they all pass. A test that also fails on
the unmutated tree kills nothing: the first failing test of every killed mutant is re-run on an
unmutated copy, and mutants stopped by such a pre-existing failure are re-run without it.

Usage:
    python benchmarks/mutation.py [--only NAME ...] [--jobs 2] [--timeout 300] [--list]

Writes ``benchmarks/results/mutation.json`` (per mutant: status, seconds, the test that killed
it) and prints the kill rate. Exit status 0 whatever the rate; 2 when a snippet is not found.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mutation.json"

_EXTRACT = ("tests/extract/test_cache_content.py", "tests/extract/test_extractor.py")
_PROBE = ("tests/analyzers/test_linear_probe*.py", "tests/analyzers/test_evaluation*.py")
_CONFORMANCE = (
    "tests/encoders/test_conformance.py::test_encoder_conformance[tiny-test]",
    "tests/encoders/test_conformance.py::test_encoder_conformance[random-resnet1d]",
)


@dataclass(frozen=True)
class Mutation:
    """One planted bug: replace the unique snippet ``find`` in ``file`` by ``replace``."""

    name: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]  # test files, globs or node ids (relative to the repository)
    why: str


def _drop_encoder_field(field: str) -> str:
    enc = f'{{k: v for k, v in provenance["encoder"].items() if k != "{field}"}}'
    return f'        "provenance": {{**provenance, "encoder": {enc}}},\n'


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "cache-key-without-weights",
        "ecgprobe/extract/cache.py",
        '        "provenance": provenance,\n',
        _drop_encoder_field("weights_sha256"),
        _EXTRACT,
        "issue 19.1: the embedding cache key ignores the weights digest",
    ),
    Mutation(
        "cache-key-without-spec",
        "ecgprobe/extract/cache.py",
        '        "provenance": provenance,\n',
        _drop_encoder_field("spec"),
        _EXTRACT,
        "issue 19.2: the embedding cache key ignores the preprocessing contract",
    ),
    Mutation(
        "cache-ignores-record-content",
        "ecgprobe/extract/cache.py",
        "[stored != self.digests[rows.start : rows.stop]]",
        "[stored != stored]",
        _EXTRACT,
        "issue 12.4: cached rows are reused after their record's signal changed",
    ),
    Mutation(
        "no-resampling",
        "ecgprobe/encoders/base.py",
        "        x = pp.resample(x, fs, spec.fs)\n",
        "        pass\n",
        _CONFORMANCE,
        "issue 19.3: the encoder's input chain skips resampling",
    ),
    Mutation(
        "bootstrap-by-record",
        "ecgprobe/analyzers/_stats/evaluation.py",
        'test_groups=np.asarray(records.patient_ids[masks["test"]], dtype=str)',
        'test_groups=np.asarray(records.ids[masks["test"]], dtype=str)',
        (*_PROBE, "tests/analyzers/test_knn_probe.py"),
        "issue 19.4: record ids where patient ids belong in the probe's bootstrap",
    ),
    Mutation(
        "split-by-record",
        "ecgprobe/data/splits.py",
        "groups, inverse = np.unique(pids, return_inverse=True)",
        "groups, inverse = np.unique(np.arange(len(pids)), return_inverse=True)",
        ("tests/data/test_record.py", "tests/data/test_synthetic.py"),
        "patient leakage: splits are drawn per record, a patient's records land in several splits",
    ),
    Mutation(
        "superclass-from-subclass",
        "ecgprobe/data/ptbxl.py",
        '"superclass": "diagnostic_class"',
        '"superclass": "diagnostic_subclass"',
        ("tests/data/test_ptbxl.py",),
        "label aggregation: PTB-XL superclasses built from the subclass column",
    ),
    Mutation(
        "likelihood-strict",
        "ecgprobe/data/ptbxl.py",
        "lik >= min_likelihood",
        "lik > min_likelihood",
        ("tests/data/test_ptbxl.py",),
        "label aggregation: statements at the likelihood threshold (0 by default) are dropped",
    ),
    Mutation(
        "auroc-ties-ignored",
        "ecgprobe/analyzers/_stats/metrics.py",
        "twice = lt + cneg[:, upto] if tied else 2 * lt",
        "twice = 2 * lt",
        ("tests/analyzers/test_metrics.py",),
        "AUROC: tied scores count 0 instead of 1/2",
    ),
    Mutation(
        "cka-uncentred",
        "ecgprobe/analyzers/_stats/cka_linear.py",
        "            C -= mu\n",
        "            pass\n",
        ("tests/analyzers/test_cka.py",),
        "CKA: the embeddings are not centred",
    ),
    Mutation(
        "C-chosen-on-test",
        "ecgprobe/analyzers/linear_probe.py",
        '        val_auc = val_auroc(Y["val"], logits_val)\n',
        '        val_auc = val_auroc(Y["test"], path.decision_function(Xs["test"]))\n',
        _PROBE,
        "model selection leak: the probe's C is chosen on the test split",
    ),
    Mutation(
        "threshold-chosen-on-test",
        "ecgprobe/analyzers/_stats/evaluation.py",
        "    thresholds = best_f1_thresholds(y_val, p_val)\n",
        "    thresholds = best_f1_thresholds(y_test, p_test)\n",
        (*_PROBE, "tests/analyzers/test_knn_probe.py"),
        "model selection leak: F1 thresholds are chosen on the test split",
    ),
    Mutation(
        "scaler-fit-on-test",
        "ecgprobe/analyzers/linear_probe.py",
        'fit_scaler(data.X["train"])',
        'fit_scaler(np.concatenate([data.X["train"], data.X["test"]]))',
        _PROBE,
        "leakage: the probe's standardisation is fitted on train and test",
    ),
    Mutation(
        "knn-k-not-tuned",
        "ecgprobe/analyzers/knn_probe.py",
        "        _, _, best = select_by_val(val_auc, per_label=False)\n",
        "        best = len(ks) - 1\n",
        ("tests/analyzers/test_knn_probe.py",),
        "kNN probe: k is not chosen on validation (always the largest k)",
    ),
    Mutation(
        "ci-wrong-level",
        "ecgprobe/analyzers/_stats/bootstrap.py",
        "q = [50 * (1 - level), 50 * (1 + level)]",
        "q = [100 * (1 - level), 100 * level]",
        ("tests/analyzers/test_metrics.py", *_PROBE),
        "bootstrap: a 90% interval reported as the 95% one",
    ),
    Mutation(
        "lead-III-sign",
        "ecgprobe/data/leads.py",
        '"III": lead_ii - lead_i,',
        '"III": lead_i - lead_ii,',
        ("tests/data/test_preprocess.py",),
        "lead derivation: Einthoven's III = II - I with the wrong sign",
    ),
    Mutation(
        "crop-from-end",
        "ecgprobe/data/preprocess.py",
        's = 0 if align == "start" else (t - n_samples) // 2',
        's = t - n_samples if align == "start" else (t - n_samples) // 2',
        ("tests/data/test_preprocess.py",),
        "windowing: 'fit' keeps the last samples of a record instead of the first",
    ),
    Mutation(
        "sliding-first-window-only",
        "ecgprobe/extract/extractor.py",
        "arr = arr.reshape(x.shape[0], x.shape[1], -1).mean(axis=1)",
        "arr = arr.reshape(x.shape[0], x.shape[1], -1)[:, 0]",
        ("tests/extract/test_extractor.py",),
        "sliding windows: only the first window's embedding is kept, not the mean",
    ),
    Mutation(
        "wfdb-baseline-ignored",
        "ecgprobe/data/wfdb_io.py",
        "out = ((digital - base) / gain * scale)",
        "out = (digital / gain * scale)",
        ("tests/data/test_wfdb_io.py", "tests/data/test_ptbxl.py", "tests/data/test_challenge.py"),
        "WFDB decoding: the ADC baseline is not subtracted",
    ),
)


def check_snippets(mutations: tuple[Mutation, ...]) -> list[str]:
    """Problems with the mutation list: snippets absent or not unique, test targets missing."""
    problems = []
    for m in mutations:
        path = ROOT / m.file
        count = path.read_text().count(m.find) if path.exists() else -1
        if count != 1:
            where = "file missing" if count < 0 else f"found {count} times"
            problems.append(f"{m.name}: snippet {m.find!r} in {m.file}: {where}")
        if not targets(m.tests):
            problems.append(f"{m.name}: none of its tests exist: {list(m.tests)}")
    names = [m.name for m in mutations]
    problems += [f"duplicate mutation name {n!r}" for n in sorted({n for n in names if names.count(n) > 1})]
    return problems


def targets(tests: tuple[str, ...]) -> list[str]:
    """The test files (globs expanded) and node ids of ``tests`` that exist in the repository."""
    out = []
    for t in tests:
        file = t.split("::")[0]
        out += [str(p.relative_to(ROOT)) + t[len(file) :] for p in sorted(ROOT.glob(file))]
    return out


def _copy_tree(dst: Path) -> None:
    skip = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")
    for folder in ("ecgprobe", "tests"):
        shutil.copytree(ROOT / folder, dst / folder, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")


def _env(tree: Path) -> dict[str, str]:
    data = os.environ.get("ECGPROBE_TEST_DATA", str(ROOT.parent / "shared" / "data"))
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "ECGPROBE_TEST_DATA": data}


_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$", re.M)


def run_tests(
    tree: Path, tests: list[str], deselect: frozenset[str], timeout: float, stop_first: bool = True
) -> tuple[str, float, list[str]]:
    """Run pytest on ``tests`` in ``tree``: ``(status, seconds, failing node ids)``."""
    cmd = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-rfE"]
    cmd += ["-x"] if stop_first else []
    for node in sorted(deselect):
        cmd += ["--deselect", node]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, []
    seconds = time.perf_counter() - t0
    failing = _FAILED.findall(proc.stdout)
    if proc.returncode == 0:
        return "survived", seconds, []
    if proc.returncode == 1 and failing:
        return "killed", seconds, failing
    tail = (proc.stdout + proc.stderr)[-2000:]
    raise RuntimeError(f"pytest exited {proc.returncode} in {tree} for {tests}:\n{tail}")


def run_mutant(m: Mutation, deselect: frozenset[str], timeout: float) -> dict:
    """Apply ``m`` to a temporary copy of the tree and run its tests there."""
    with tempfile.TemporaryDirectory(prefix=f"ecgprobe-mutant-{m.name}-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        path = tree / m.file
        text = path.read_text()
        path.write_text(text.replace(m.find, m.replace, 1))
        status, seconds, failing = run_tests(tree, targets(m.tests), deselect, timeout)
    return {
        **asdict(m),
        "tests": targets(m.tests),
        "status": status,
        "seconds": round(seconds, 1),
        "killed_by": failing[0] if failing else None,
    }


def clean_failures(tests: list[str], timeout: float) -> set[str]:
    """The tests among ``tests`` (all of them run, no ``-x``) that fail on an unmutated copy."""
    if not tests:
        return set()
    with tempfile.TemporaryDirectory(prefix="ecgprobe-mutant-clean-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        probe = subprocess.run(
            [sys.executable, "-c", "import ecgprobe; print(ecgprobe.__file__)"],
            cwd=tree,
            env=_env(tree),
            capture_output=True,
            text=True,
        )
        if not probe.stdout.strip().startswith(str(tree)):
            raise RuntimeError(f"the copy does not import its own ecgprobe: {probe.stdout}{probe.stderr}")
        status, _, failing = run_tests(tree, sorted(set(tests)), frozenset(), timeout, stop_first=False)
    if status == "timeout":
        raise RuntimeError(f"the unmutated tests {tests} ran past {timeout:g} s; pass a larger --timeout")
    return set(failing)


def _run_all(todo: list[Mutation], deselect: frozenset[str], jobs: int, timeout: float) -> list[dict]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        out = []
        for r in pool.map(partial(run_mutant, deselect=deselect, timeout=timeout), todo):
            print(f"{r['status']:9s} {r['seconds']:6.1f} s  {r['name']}", flush=True)
            out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="run only these mutations (names)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants tested in parallel")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant's test run")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    problems = check_snippets(MUTATIONS)
    if problems:
        print("mutation list out of date with the code:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = sorted(set(args.only or ()) - {m.name for m in MUTATIONS})
    if unknown:
        print(f"unknown mutations {unknown}; see --list", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.name:28s} {m.file:36s} {m.why}")
        return 0
    t0 = time.perf_counter()
    done = {r["name"]: r for r in _run_all(chosen, frozenset(), args.jobs, args.timeout)}
    # a kill counts only if the killing test passes on the unmutated tree; where it does not,
    # every pre-existing failure of that mutant's tests is deselected and the mutant re-run
    killers = sorted({r["killed_by"] for r in done.values() if r["killed_by"]})
    broken = clean_failures(killers, args.timeout)
    deselect: set[str] = set()
    if broken:
        again = [m for m in chosen if done[m.name]["killed_by"] in broken]
        deselect = clean_failures([t for m in again for t in targets(m.tests)], args.timeout)
        print(f"failing on the unmutated tree too, deselected: {sorted(deselect)}", flush=True)
        for r in _run_all(again, frozenset(deselect), args.jobs, args.timeout):
            if r["killed_by"] in deselect:
                raise RuntimeError(f"{r['killed_by']} fails on the unmutated tree yet was not deselected")
            done[r["name"]] = r
    results = [done[m.name] for m in chosen]
    killed = [r for r in results if r["status"] in ("killed", "timeout")]
    rate = len(killed) / len(results)
    doc = {
        "kill_rate": round(rate, 3),
        "killed": len(killed),
        "total": len(results),
        "survived": [r["name"] for r in results if r["status"] == "survived"],
        "timeouts": [r["name"] for r in results if r["status"] == "timeout"],
        "preexisting_failures_deselected": sorted(deselect),
        "seconds": round(time.perf_counter() - t0, 1),
        "mutants": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(
        f"kill rate {len(killed)}/{len(results)} = {rate:.0%}; survived: {', '.join(doc['survived']) or 'none'}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
