"""``ecgprobe demo``: the README's first command — reports on generated ECGs, no download.

On a synthetic 12-lead dataset whose labels have known physiological causes, with the reference
encoders (``random-resnet1d``: random weights, the floor any pretrained model must beat;
``handcrafted``: interpretable ECG features) and, when the ``openecg`` package is installed, the
real pretrained ``openecg-codec``, it writes:

- a model report of the pretrained encoder (``random-resnet1d`` without openecg);
- a comparison of it with ``random-resnet1d`` (with ``handcrafted`` without openecg);
- a data-scarcity study over all of them (with ``scarcity.csv``).

Embeddings and analyzer results are cached under ``--out``/cache, so running it again
re-renders in seconds. The ``quick`` profile keeps it to a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import ecgprobe
from ecgprobe.cli.common import non_negative_int, out_folder, plain, positive_int

#: The codec is single-lead and runs once per lead; three leads (frontal axis + anterior
#: precordial) keep the demo within minutes on a CPU while seeing every synthetic label's cause.
OPENECG_DEMO_LEADS = "I,II,V2"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the demo command."""
    p = sub.add_parser(
        "demo",
        help="reports on generated 12-lead ECGs (no download): one model, a comparison, a scarcity study",
        description=plain("\n\n".join(__doc__.split("\n\n")[1:4])) if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=out_folder,
        default=Path("ecgprobe-out/demo"),
        help="output folder (default ecgprobe-out/demo)",
    )
    p.add_argument(
        "--n-records", type=positive_int, default=400, help="synthetic records to generate (default 400)"
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the data and of every analysis (default 0)"
    )
    p.add_argument(
        "--profile", choices=("quick", "full"), default="quick", help="analysis settings (default quick)"
    )
    p.add_argument("--no-openecg", action="store_true", help="leave the pretrained openecg-codec out")
    p.add_argument("--format", default="html,pdf", help="html, pdf or html,pdf (default both)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--force", action="store_true", help="overwrite the reports of an earlier run")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary lines")
    p.set_defaults(handler=cmd_demo)


def demo_encoders(use_openecg: bool) -> list[tuple[str, dict[str, Any]]]:
    """``[(name, options)]`` of the demo's encoders, the one the model report is about first."""
    encoders: list[tuple[str, dict[str, Any]]] = [("random-resnet1d", {}), ("handcrafted", {})]
    if use_openecg and importlib.util.find_spec("openecg") is not None:
        encoders.insert(0, ("openecg-codec", {"leads": OPENECG_DEMO_LEADS}))
    return encoders


def variant(name: str, options: dict[str, Any]) -> str:
    """The name a demo encoder is shown under: its variant is named wherever it appears
    (``openecg-codec-3lead`` when it sees 3 of the 12 leads)."""
    leads = options.get("leads")
    return f"{name}-{len(str(leads).split(','))}lead" if leads else name


def _about(name: str, options: dict[str, Any]) -> str:
    leads = options.get("leads")
    return f"{name} on leads {', '.join(str(leads).split(','))}" if leads else name


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the data, extract, analyse and write the three reports and an index."""
    from ecgprobe._io import atomic_write
    from ecgprobe.exceptions import ConfigError
    from ecgprobe.outputs import Output
    from ecgprobe.report import Report
    from ecgprobe.report.multi import compare_report, scarcity_report, write_scarcity_csv
    from ecgprobe.report.pipeline import model_report

    t0 = time.perf_counter()
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    if not formats or set(formats) - {"html", "pdf"}:
        raise ConfigError(f"--format must be html, pdf or html,pdf; got {args.format!r}")
    names = Report.output_names(formats)
    chosen = demo_encoders(not args.no_openecg)
    about = {variant(n, o): _about(n, o) for n, o in chosen}
    encoders = [(variant(n, o), n, o) for n, o in chosen]
    main_name, ref_name = (
        encoders[0][0],
        "random-resnet1d" if encoders[0][0] != "random-resnet1d" else "handcrafted",
    )
    folders = {"model": main_name, "compare": f"{main_name}-vs-{ref_name}", "scarcity": "scarcity"}
    output = Output(  # refuse before any work, not after minutes of it
        args.out,
        [*(f"{f}/{n}" for f in folders.values() for n in names), "scarcity/scarcity.csv", "index.html"],
        force=args.force,
    ).check()
    if not any(e[1] == "openecg-codec" for e in encoders) and not args.no_openecg:
        _say(
            args,
            "note: the openecg package is not installed (Python >= 3.11: pip install 'ecgprobe[openecg]'); "
            "the demo runs on the reference encoders only",
        )

    records = ecgprobe.load_dataset("synthetic", n_records=args.n_records, seed=args.seed)
    _say(
        args,
        f"[demo] {len(records)} synthetic records, {records.fs:g} Hz, labels: {', '.join(records.label_names)}",
    )
    cache = args.out / "cache"
    layers, created, timings = {}, {}, {}
    for name, registered, options in encoders:
        t1 = time.perf_counter()
        enc = ecgprobe.create_encoder(registered, device=args.device, **options)
        got = ecgprobe.extract(enc, records, layers="all", cache_dir=cache, progress=not args.quiet)
        layers[name], created[name] = got, enc
        timings[f"{name}: extraction"] = round(time.perf_counter() - t1, 3)
        _say(args, f"[demo] {name}: {enc.embed_dim}-d embeddings in {timings[f'{name}: extraction']:.1f} s")
    common = {"profile": args.profile, "seed": args.seed, "cache_dir": cache, "progress": not args.quiet}
    written = {}

    model = model_report(
        layers[main_name]["embedding"],
        records,
        encoder=created[main_name],
        name=main_name,
        title=f"{about[main_name]}, on synthetic 12-lead ECGs",
        analyses=None
        if created[main_name].differentiable
        else [a for a in _model_analyses() if a != "input_attribution"],
        extra_timings={"extraction": timings[f"{main_name}: extraction"]},
        **common,
    )
    written["model report"] = folders["model"]

    cmp = compare_report(
        layers[main_name],
        layers[ref_name],
        records,
        names=(main_name, ref_name),
        encoders=(created[main_name], created[ref_name]),
        title=f"{about[main_name]} vs {about[ref_name]}, on synthetic 12-lead ECGs",
        extra_timings={k: v for k, v in timings.items() if k.split(":")[0] in (main_name, ref_name)},
        **common,
    )
    written["comparison"] = folders["compare"]

    study = scarcity_report(
        {name: layers[name]["embedding"] for name, _, _ in encoders},
        records,
        encoders=created,
        title="Data scarcity on synthetic 12-lead ECGs",
        extra_timings=timings,
        **common,
    )
    written["data-scarcity study"] = folders["scarcity"]

    from ecgprobe.report.index import render_index

    with output.staged() as tmp:  # the three reports and the index together, or nothing
        for report, folder in zip((model, cmp, study), folders.values()):
            report.write_files(tmp / folder, formats)
        write_scarcity_csv(study, tmp / folders["scarcity"] / "scarcity.csv")
        index = render_index(
            "ecgprobe demo",
            f"{len(records)} generated 12-lead ECGs (seed {args.seed}); encoders: {', '.join(about.values())}.",
            [
                (title, tmp / folder, rep)
                for (title, folder), rep in zip(written.items(), (model, cmp, study))
            ],
            tmp,
        )
        atomic_write(tmp / "index.html", index.encode())
    if not args.quiet:
        for title, folder in written.items():
            print(f"{title:20s} {output.path(folder) / 'report.html'}")
        print(f"{'index':20s} {output.path('index.html')}")
        print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


def _model_analyses() -> tuple[str, ...]:
    from ecgprobe.report.pipeline import MODEL_ANALYSES

    return MODEL_ANALYSES
