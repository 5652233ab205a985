"""Start-up and cached re-run benchmarks: whole processes, as a user runs them.

1. ``ecgprobe --help`` and ``ecgprobe datasets`` in a fresh process (target <= 0.5 s), next to
   the bare interpreter start (``python -c pass``) as the floor no command can beat.
2. ``ecgprobe extract`` on 1,500 WFDB records (PTB-XL mini at 500 Hz, its 500 records copied
   three times under distinct ids and folders, official PTB-XL layout): the first run, into an
   empty cache, is the baseline; the cached re-run (same dataset and cache, another ``--out``)
   is the figure (target >= 5x faster). The re-run decodes no signal and reads no record file:
   the dataset is read lazily and the record digests come from the memo beside the cache,
   which checks every file's size, modification and change times and inode, and the request
   memo beside the cache spares creating the encoder (no torch import; ``ecgprobe/extract/_reuse.py``). The copied files
   are left to age for 2 s first (files changed moments ago are never remembered, and a user's
   dataset is not seconds old). Both runs' embeddings are compared (they must be identical).

Every command is its own subprocess (``python -m ecgprobe``, with this checkout first on
``PYTHONPATH`` and its bytecode compiled first, as an installed package's is), timed by wall
clock, with its CPU seconds recorded beside (less sensitive to other load on a shared machine);
``--runs`` repetitions (default 3), each extraction pair with a fresh cache. Results: ``benchmarks/results/startup_help.json``, ``startup_datasets.json`` and
``extract_cached_rerun.json`` (the schema ``benchmarks/make_table.py`` reads).

Usage: python benchmarks/bench_startup.py [--records 1500] [--encoder handcrafted] [--runs 3]
       [--threads N] [--skip help,datasets,extract]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("ECGPROBE_TEST_DATA", ROOT.parent / "shared" / "data")) / "ptbxl-mini"

from benchmarks._results import figure, machine, save  # noqa: E402


def child_env(threads: int | None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install keeps compiled bytecode: so do we
    if threads:
        env.update(
            dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), str(threads))
        )
    return env


CPU: list[float] = []  # CPU seconds (user + system) of each timed subprocess, in order


def timed(args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one subprocess (it must succeed); its CPU seconds go to :data:`CPU`
    (less sensitive than wall time to other load on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 3))
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def build_ptbxl(dst: Path, n_records: int) -> int:
    """PTB-XL mini's 500 Hz records copied into ``dst`` until ``n_records`` rows (distinct ids and
    folders, official layout); returns the number of rows written."""
    if not (DATA / "ptbxl_database.csv").exists():
        raise SystemExit(f"PTB-XL mini not found at {DATA}; set ECGPROBE_TEST_DATA to the shared data folder")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "scp_statements.csv", dst)
    with open(DATA / "ptbxl_database.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for k in range(n_records):
        copy, row = divmod(k, len(rows))
        r = dict(rows[row])
        r["ecg_id"] = str(k + 1)
        src = Path(r["filename_hr"])
        new = Path(src.parts[0]) / f"copy{copy}" / Path(*src.parts[1:])
        (dst / new.parent).mkdir(parents=True, exist_ok=True)
        for ext in (".hea", ".dat"):
            shutil.copyfile(DATA / f"{src}{ext}", dst / f"{new}{ext}")
        r["filename_hr"] = str(new)
        out.append(r)
    with open(dst / "ptbxl_database.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(out)
    return len(out)


def bench_command(argv: list[str], label: str, n_runs: int, env: dict[str, str], threads: int) -> dict:
    bare = [sys.executable, "-c", "pass"]
    cmd = [sys.executable, "-m", "ecgprobe", *argv]
    timed(cmd, env)  # warm the file system cache: every run then starts from the same state
    runs = []
    for _ in range(n_runs):
        b, e = timed(bare, env), timed(cmd, env)
        runs.append({"baseline_s": round(b, 4), "ecgprobe_s": round(e, 4), "ratio": round(b / e, 4),
                     "baseline_cpu_s": CPU[-2], "ecgprobe_cpu_s": CPU[-1]})  # fmt: skip
    secs = [r["ecgprobe_s"] for r in runs]
    print(f"[{label}] {' '.join(['ecgprobe', *argv])}: {min(secs):.3f}-{max(secs):.3f} s over {n_runs} runs "
          f"(bare interpreter {min(r['baseline_s'] for r in runs):.3f} s; target <= 0.5 s)")  # fmt: skip
    return figure(
        f"`ecgprobe {' '.join(argv)}`, fresh process",
        f"`python -m ecgprobe {' '.join(argv)}`, output discarded",
        threads,
        "the bare interpreter start (`python -c pass`); ratio = its time / the command's",
        runs,
        unit="s",
        seconds_range=[min(secs), max(secs)],
        target="<= 0.5 s",
        accuracy={},
    )


def bench_extract(n_records: int, encoder: str, n_runs: int, env: dict[str, str], threads: int) -> dict:
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="ecgprobe-bench-startup-") as tmp:
        work = Path(tmp)
        rows = build_ptbxl(work / "ptbxl", n_records)
        time.sleep(2.1)  # let the copies age past the memo's racy window (a real dataset is older)
        base = [sys.executable, "-m", "ecgprobe", "extract", "--dataset", "ptbxl", "--root", str(work / "ptbxl"),
                "-o", "sampling_rate=500", "-o", "drop_unlabeled=false", "--encoder", encoder, "--quiet"]  # fmt: skip
        runs, diffs = [], []
        for i in range(n_runs):
            cache = work / f"cache{i}"
            first = timed([*base, "--cache-dir", str(cache), "--out", str(work / f"first{i}")], env)
            again = timed([*base, "--cache-dir", str(cache), "--out", str(work / f"again{i}")], env)
            manifest = json.loads((work / f"again{i}" / "manifest.json").read_text())
            stats = manifest["provenance"]["extraction"]
            if stats["computed"] != 0:
                raise SystemExit(f"the re-run computed {stats['computed']} records; the cache was not used")
            a = np.load(work / f"first{i}" / "embeddings.npy")
            b = np.load(work / f"again{i}" / "embeddings.npy")
            diffs.append(float(np.abs(a - b).max()))
            runs.append({"baseline_s": round(first, 3), "ecgprobe_s": round(again, 3), "ratio": round(first / again, 2),
                         "baseline_cpu_s": CPU[-2], "ecgprobe_cpu_s": CPU[-1]})  # fmt: skip
            print(f"  run {i + 1}: first {first:.2f} s (CPU {CPU[-2]:.2f} s), cached re-run {again:.2f} s "
                  f"(CPU {CPU[-1]:.2f} s) -> {first / again:.1f}x")  # fmt: skip
            shutil.rmtree(cache)
        r = [x["ratio"] for x in runs]
        print(f"[extract] {encoder} on {rows} WFDB records: cached re-run {min(r):.1f}-{max(r):.1f}x faster "
              f"than the first run, whole process (target >= 5x); max |difference| {max(diffs):g}")  # fmt: skip
        return figure(
            "cached `ecgprobe extract` re-run vs the first run, whole process",
            f"{rows} WFDB records (PTB-XL mini 500 Hz x 3, official layout), encoder `{encoder}`, "
            "fresh cache per run, 500 Hz, default batch and window",
            threads,
            "the first `ecgprobe extract` of the same command into an empty cache",
            runs,
            target=">= 5x",
            accuracy={"max_abs_difference": max(diffs), "records_computed_on_rerun": 0},
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1500)
    ap.add_argument(
        "--encoder", default="handcrafted", help="a reference encoder (handcrafted, random-resnet1d)"
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=None, help="OMP/MKL threads of the children (default: all cores)"
    )
    ap.add_argument("--skip", default="", help="comma list of parts to skip: help,datasets,extract")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    env = child_env(args.threads)
    threads = args.threads or os.cpu_count() or 1
    # what pip does at install: the timed runs load compiled bytecode, as a user's do
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "ecgprobe")], env=env, check=True)
    print(f"machine: {machine()}; child threads: {threads}; runs: {args.runs}; checkout: {ROOT}")
    if "help" not in skip:
        save(bench_command(["--help"], "help", args.runs, env, threads), "startup_help.json")
    if "datasets" not in skip:
        save(bench_command(["datasets"], "datasets", args.runs, env, threads), "startup_datasets.json")
    if "extract" not in skip:
        save(bench_extract(args.records, args.encoder, args.runs, env, threads), "extract_cached_rerun.json")


if __name__ == "__main__":
    main()
