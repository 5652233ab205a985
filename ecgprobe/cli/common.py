"""Argument helpers shared by the commands: dataset, encoder and extraction options, outputs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgprobe.exceptions import ConfigError
from ecgprobe.outputs import Output
from ecgprobe.settings import RunSettings, parse_layers

if TYPE_CHECKING:  # the data layer (NumPy, pandas) is imported by the commands that load data
    from ecgprobe.data import RecordSet

__all__ = [
    "add_dataset_args",
    "add_encoder_args",
    "add_extraction_args",
    "add_output_args",
    "check_output",
    "dataset_from_args",
    "default_cache_dir",
    "embeddings_from_args",
    "encoder_from_args",
    "non_negative_int",
    "open_interval",
    "out_folder",
    "parse_options",
    "positive_int",
    "settings_from_args",
]


def add_dataset_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--dataset NAME --root DIR -o key=value ...``."""
    g = parser.add_argument_group("dataset")
    g.add_argument(
        "--dataset", required=required, metavar="NAME", help="dataset loader (see `ecgprobe datasets`)"
    )
    g.add_argument("--root", metavar="DIR", help="dataset folder (not needed for synthetic)")
    g.add_argument(
        "-o",
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option, repeatable, e.g. -o sampling_rate=100 -o labels=all",
    )


def parse_options(
    pairs: Sequence[str], target: str | Callable[..., Any], *, where: str | None = None
) -> dict[str, Any]:
    """``-o``/``-E`` pairs parsed by the annotations of ``target``: a dataset name (its loader)
    or a callable such as an encoder factory (see :func:`ecgprobe.options.parse_options`).

    Raises:
        ConfigError: a pair that is not ``KEY=VALUE``, or a value that does not fit its option.
    """
    from ecgprobe.data import DATASETS
    from ecgprobe.options import parse_options as _parse_options

    if isinstance(target, str):
        where = where or f"dataset {DATASETS.entry(target).name!r}"
        target = DATASETS.get(target)
    return _parse_options(pairs, target, where=where)


def dataset_from_args(args: argparse.Namespace, *, lazy: bool | None = None) -> RecordSet:
    """Load the dataset named by ``--dataset/--root/-o``; ``lazy`` is the default of the loader's
    ``lazy`` option where it has one and ``-o lazy=...`` is not given (``-o nonfinite=drop`` needs
    the eager scan and keeps the loader's default)."""
    from ecgprobe.data import dataset_options, load_dataset

    options = parse_options(args.options, args.dataset)
    keep_default = lazy is None or "lazy" in options or options.get("nonfinite") == "drop"
    if not keep_default and any(opt.name == "lazy" for opt in dataset_options(args.dataset)):
        options["lazy"] = lazy
    return load_dataset(args.dataset, args.root, **options)


def default_cache_dir() -> Path:
    """``$ECGPROBE_CACHE``, or ``~/.cache/ecgprobe``."""
    return Path(os.environ.get("ECGPROBE_CACHE", Path.home() / ".cache" / "ecgprobe")).expanduser()


def add_extraction_args(parser: argparse.ArgumentParser) -> None:
    """Options of the extraction run: device, batch size, cache, window policy, precision."""
    g = parser.add_argument_group("extraction")
    g.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N] (default auto)"
    )
    g.add_argument(
        "--batch-size", type=positive_int, default=64, help="records per forward pass (default 64)"
    )
    g.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="embedding cache (default $ECGPROBE_CACHE or ~/.cache/ecgprobe)",
    )
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    g.add_argument(
        "--window",
        choices=("official", "fit", "sliding"),
        default="official",
        help="official (default): the model's own record-level windows, averaged (see encoders --details); "
        "fit: crop/pad each record to the model's window; sliding: average over windows covering the record",
    )
    g.add_argument(
        "--hop",
        type=positive_int,
        default=None,
        help="window step in samples for --window sliding (default: no overlap)",
    )
    g.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="autocast precision (default fp32)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars or summary lines")


def add_encoder_args(parser: argparse.ArgumentParser, *, suffix: str = "", embeddings: bool = True) -> None:
    """``--encoder NAME --checkpoint PATH -E key=value`` (and ``--embeddings DIR`` as the alternative).

    With ``suffix="-a"`` the options become ``--encoder-a``, ``--checkpoint-a``, ``--encoder-option-a``,
    ``--embeddings-a`` (for commands comparing two encoders).
    """
    dest = suffix.replace("-", "_")
    g = parser.add_argument_group(f"encoder{(' ' + suffix.strip('-').upper()) if suffix else ''}")
    g.add_argument(
        f"--encoder{suffix}", dest=f"encoder{dest}", metavar="NAME", help="encoder (see `ecgprobe encoders`)"
    )
    g.add_argument(
        f"--checkpoint{suffix}",
        dest=f"checkpoint{dest}",
        metavar="PATH",
        help="the published checkpoint file/folder",
    )
    g.add_argument(
        f"--checkpoint-sha256{suffix}",
        dest=f"checkpoint_sha256{dest}",
        metavar="HEX",
        help="refuse the checkpoint unless its sha256 is this (the published one, or weights_sha256 of a run)",
    )
    flags = ["-E", "--encoder-option"] if not suffix else [f"--encoder-option{suffix}"]
    g.add_argument(
        *flags,
        dest=f"encoder_options{dest}",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"encoder option, repeatable, e.g. {flags[0]} seed=1 "
        f"(torchscript/onnx: {flags[0]} fs=500 {flags[0]} n_samples=5000 ...)",
    )
    if embeddings:
        g.add_argument(
            f"--embeddings{suffix}",
            dest=f"embeddings{dest}",
            metavar="DIR",
            type=Path,
            help="use embeddings from an `ecgprobe extract` folder (or any folder with embeddings.npy + ids.npy) "
            "instead of an encoder; records are matched by id",
        )


def encoder_from_args(args: argparse.Namespace, *, suffix: str = "") -> Any:
    """Create the encoder named by ``--encoder{suffix}``."""
    from ecgprobe.encoders import ENCODERS, create_encoder

    dest = suffix.replace("-", "_")
    name = getattr(args, f"encoder{dest}")
    if not name:
        raise ConfigError(
            f"pass --encoder{suffix} NAME (see `ecgprobe encoders`) or --embeddings{suffix} DIR"
        )
    where = f"encoder {ENCODERS.entry(name).name!r}"
    options = parse_options(getattr(args, f"encoder_options{dest}", []), ENCODERS.get(name), where=where)
    return create_encoder(
        name,
        checkpoint=getattr(args, f"checkpoint{dest}"),
        device=args.device,
        sha256=getattr(args, f"checkpoint_sha256{dest}", None),
        **options,
    )


def settings_from_args(args: argparse.Namespace, *, layers: Any = None) -> RunSettings:
    """The run's settings from the command line, built once: extraction options (device,
    precision, batch size, window, hop, cache), ``--seed``, ``--profile``, ``--quiet`` and, where
    a command has them, ``--ci-level`` and ``--n-resamples``; ``layers`` as parsed by the command.

    Raises:
        ConfigError: a combination that cannot work (e.g. ``--hop`` without ``--window sliding``).
    """
    no_cache = getattr(args, "no_cache", False)
    return RunSettings(
        device=getattr(args, "device", None) or "auto",
        precision=getattr(args, "precision", "fp32"),
        batch_size=getattr(args, "batch_size", 64),
        window=getattr(args, "window", "official"),
        hop=getattr(args, "hop", None),
        layers=layers,
        cache_dir=None if no_cache else (getattr(args, "cache_dir", None) or default_cache_dir()),
        seed=getattr(args, "seed", 0),
        ci_level=getattr(args, "ci_level", None),
        n_resamples=getattr(args, "n_resamples", None),
        profile=getattr(args, "profile", None) or "full",
        progress=not getattr(args, "quiet", False),
    )


def embeddings_from_args(
    args: argparse.Namespace,
    records: RecordSet | None,
    settings: RunSettings | None = None,
    *,
    layers: Any = "default",
    suffix: str = "",
    encoder: Any = None,
) -> Any:
    """Embeddings for ``records``: extracted through the cache with ``--encoder``, or loaded from
    ``--embeddings DIR``. Returns ``Embeddings`` (one layer) or ``{layer: Embeddings}`` (a list or
    ``"all"``; default: the settings' layers). Loaded embeddings are matched to ``records`` by id
    (a clear error otherwise). Pass ``encoder`` when the command already created it (it is then
    not created again).
    """
    from ecgprobe.extract import align_to_records, load_embeddings

    settings = settings or settings_from_args(args)
    spec = settings.layers if layers == "default" else parse_layers(layers)
    dest = suffix.replace("-", "_")
    folder = getattr(args, f"embeddings{dest}", None)
    if folder is not None:
        if getattr(args, f"encoder{dest}", None):
            raise ConfigError(f"pass either --encoder{suffix} or --embeddings{suffix}, not both")
        names = _folder_layers(Path(folder)) if spec == "all" else [None] if spec is None else list(spec)
        loaded = {}
        for name in names:
            emb = load_embeddings(folder, layer=name)
            if records is not None:
                emb, _ = align_to_records(emb, records)
            loaded[emb.layer] = emb
        return next(iter(loaded.values())) if spec is None else loaded
    if records is None:
        raise ConfigError("an encoder needs a dataset: pass --dataset (and --root)")
    memo = None
    if encoder is None and settings.cache_dir is not None:
        memo = _request(args, dest, records, settings, spec)
        served = _served(memo, records, settings)
        if served is not None:
            return served
    from ecgprobe.extract import extract

    encoder = encoder if encoder is not None else encoder_from_args(args, suffix=suffix)
    result = extract(encoder, records, **settings.extraction(layers=spec))
    if memo is not None:
        from ecgprobe.extract._reuse import remember_request

        remember_request(settings.cache_dir, memo, result)
    return result


def _request(
    args: argparse.Namespace, dest: str, records: RecordSet, settings: RunSettings, spec: Any
) -> str | None:
    """The request-memo key of this command's extraction (see :mod:`ecgprobe.extract._reuse`)."""
    from ecgprobe.extract._reuse import request_key

    return request_key(
        encoder=str(getattr(args, f"encoder{dest}", None)),
        options=[str(o) for o in (getattr(args, f"encoder_options{dest}", None) or [])],
        checkpoint=getattr(args, f"checkpoint{dest}", None),
        sha256=getattr(args, f"checkpoint_sha256{dest}", None),
        extraction=settings.extraction(layers=spec),
        records=records,
    )


def _served(key: str | None, records: RecordSet, settings: RunSettings) -> Any:
    """The cached embeddings of a remembered request, without creating the encoder, or ``None``."""
    if key is None:
        return None
    from ecgprobe.extract._reuse import from_request_memo, summary

    served = from_request_memo(settings.cache_dir, key, records)
    if served is None:
        return None
    result, stats = served
    if settings.progress:
        embs = [result] if not isinstance(result, dict) else list(result.values())
        name = embs[0].provenance["encoder"].get("encoder", "?")
        summary(
            name, records, [e.layer for e in embs], stats, settings.cache_dir, embs[0].provenance.get("note")
        )
    return result


def _folder_layers(folder: Path) -> list[str | None]:
    """The layers an embeddings folder holds: from its manifest, else from its file names."""
    import json

    manifest = folder / "manifest.json"
    if manifest.exists():
        return list(json.loads(manifest.read_text())["layers"])
    files = sorted(folder.glob("embeddings.*.npy"))
    return [p.name[len("embeddings.") : -len(".npy")] for p in files] or [None]


def out_folder(text: str) -> Path:
    """An ``--out`` value: a non-empty path (an empty one would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; pass the output folder, e.g. --out results/")
    return Path(text)


def _number(
    text: str, cast: Callable[[str], Any], expected: str, ok: Callable[[Any], bool], rule: str
) -> Any:
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{rule}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    return _number(text, int, "a whole number", lambda v: v >= 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    """An integer >= 0 (argparse type)."""
    return _number(text, int, "a whole number", lambda v: v >= 0, "must not be negative")


def open_interval(text: str) -> float:
    """A number strictly between 0 and 1, e.g. a confidence level (argparse type)."""
    return _number(
        text, float, "a number between 0 and 1", lambda v: 0 < v < 1, "must lie strictly between 0 and 1"
    )


def add_output_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--out DIR --force``."""
    parser.add_argument("--out", type=out_folder, required=required, metavar="DIR", help="output folder")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs in --out")


def check_output(args: argparse.Namespace, names: Sequence[str]) -> Output:
    """The files a command writes into ``--out``, checked before any work: existing ones are
    refused without ``--force``, and the folder must be writable (see :class:`ecgprobe.outputs.Output`).

    Raises:
        ConfigError: outputs exist and ``--force`` was not passed (they are listed).
        OutputError: ``--out`` is a file, lies under one, or is not writable.
    """
    return Output(args.out, names, force=args.force).check()


def plain(text: str) -> str:
    """Docstring text as plain help text: reStructuredText roles and literal markers removed
    (``:func:`x``` and ````x```` become ``x``)."""
    import re

    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", str(text))
    return text.replace("``", "").replace("`", "")
