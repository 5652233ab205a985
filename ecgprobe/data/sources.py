"""File-backed signal sources: records read on demand, or loaded once into memory.

:class:`FileSource` reads records by path with a per-format reader, brings each onto the
dataset's lead order, sampling rate and length (refusing what does not match, with the record
named), and applies the non-finite policy. :func:`load_signals` decides between keeping the
source lazy and reading it whole into an :class:`~ecgprobe.data.record.ArraySource`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from ecgprobe.data._digest_memo import active_memo
from ecgprobe.data.leads import canonical_leads
from ecgprobe.data.preprocess import fit_length, resample
from ecgprobe.data.record import ArraySource, SignalSource, files_digest
from ecgprobe.exceptions import ConfigError, DataError

__all__ = ["FileSource", "LoadedSignals", "NonFinitePolicy", "file_digest", "load_signals", "read_parallel"]

NonFinitePolicy = Literal["error", "drop", "zero"]
#: A reader maps a path to ``(signals (L, T) float32 mV, fs, lead names)``.
Reader = Callable[[str], tuple[np.ndarray, float, Sequence[str]]]
#: A digester maps the same path to the content digest of the bytes the reader decodes.
Digester = Callable[[str], str]
LAZY_THRESHOLD_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class _Conform:
    """How each record is brought onto the dataset's shape."""

    leads: tuple[str, ...]
    fs: float
    n_samples: int
    resample: bool
    fit: bool
    nonfinite: NonFinitePolicy
    #: What the user can do about a record with other leads / another rate: each loader words
    #: it with its own options (a suggestion must be an option of that loader, or none).
    fix_leads: str = (
        "the file does not match the dataset's other records; restore it from the original download"
    )
    fix_fs: str = "the file does not match the dataset's other records; restore it from the original download"


def _conform(x: np.ndarray, fs: float, leads: Sequence[str], path: str, c: _Conform) -> np.ndarray:
    names = canonical_leads(list(leads), where=path)
    if names != c.leads:
        pos = {n: i for i, n in enumerate(names)}
        missing = [lead for lead in c.leads if lead not in pos]
        if missing:
            raise DataError(f"record {path} lacks leads {missing} (it has {list(names)}); {c.fix_leads}")
        x = x[[pos[lead] for lead in c.leads]]
    if fs != c.fs:
        if not c.resample:
            raise DataError(
                f"record {path} is sampled at {fs:g} Hz but {c.fs:g} Hz was requested; {c.fix_fs}"
            )
        x = resample(x, fs, c.fs)
    if x.shape[-1] != c.n_samples:
        if not c.fit:
            raise DataError(
                f"record {path} has {x.shape[-1]} samples but {c.n_samples} were expected "
                "(header and data disagree, or the records have different lengths)"
            )
        x = fit_length(x, c.n_samples)
    return np.asarray(x, dtype=np.float32)


class FileSource(SignalSource):
    """Signals read from one file per record, on demand.

    Args:
        paths: one path per record (whatever ``reader`` accepts).
        reader: picklable function ``path -> (signals (L, T), fs, lead names)``.
        leads: the dataset's lead order; each record is reordered onto it.
        fs: the dataset's sampling rate; other rates are refused unless ``resample``.
        n_samples: the dataset's record length; other lengths are refused unless ``fit``
            (then cropped from the start or zero-padded at the end).
        nonfinite: ``"error"`` refuses records with NaN/inf samples, ``"zero"`` sets those
            samples to 0 with a warning naming the records. ``"drop"`` needs a full scan and is
            handled by :func:`load_signals`.
        threads: reader threads for multi-record reads (I/O bound; NumPy releases the GIL).
        fixes: the loader's own advice for a record with other leads (``"leads"``) or another
            sampling rate (``"fs"``), naming only options that loader has; by default the
            message says the file does not match and suggests no option.
        digest: picklable function ``path -> content digest`` of every byte ``reader`` decodes
            for that record, without decoding (e.g. :func:`file_digest`). Default ``None``:
            records are decoded and their samples hashed (always right, but slower).
    """

    def __init__(
        self,
        paths: Sequence[str],
        reader: Reader,
        *,
        leads: Sequence[str],
        fs: float,
        n_samples: int,
        resample: bool = False,
        fit: bool = False,
        nonfinite: NonFinitePolicy = "error",
        threads: int | None = None,
        index: np.ndarray | None = None,
        fixes: Mapping[str, str] | None = None,
        digest: Digester | None = None,
    ) -> None:
        if nonfinite not in ("error", "zero", "drop"):
            raise ConfigError(f"nonfinite must be 'error', 'drop' or 'zero', got {nonfinite!r}")
        self._paths = list(paths)
        self._reader = reader
        self._digest = digest
        fix = {f"fix_{k}": v for k, v in (fixes or {}).items()}
        self._c = _Conform(tuple(leads), float(fs), int(n_samples), resample, fit, nonfinite, **fix)
        self._threads = threads or min(8, (os.cpu_count() or 2) * 2)
        self._index = np.arange(len(self._paths)) if index is None else np.asarray(index, dtype=np.int64)
        self.n_leads = len(self._c.leads)
        self.n_samples = self._c.n_samples

    def __len__(self) -> int:
        return len(self._index)

    def path(self, position: int) -> str:
        """The file path of the record at ``position``."""
        return self._paths[int(self._index[position])]

    def take(self, indices: np.ndarray) -> FileSource:
        new = object.__new__(FileSource)
        new.__dict__.update(self.__dict__)
        new._index = self._index[np.asarray(indices, dtype=np.int64)]
        return new

    def read_one(self, position: int) -> np.ndarray:
        """One record, conformed, with non-finite samples *not* yet handled."""
        path = self.path(position)
        x, fs, names = self._reader(path)
        return _conform(x, fs, names, path, self._c)

    def digests(self, indices: np.ndarray) -> list[str]:
        """Content digests of the records' raw file bytes (read, never decoded), in parallel."""
        if self._digest is None:
            return super().digests(indices)
        paths = [self.path(int(i)) for i in np.asarray(indices, dtype=np.int64)]
        memo = active_memo()  # a cached extraction: records whose files are unchanged are not read
        if memo is not None:
            return memo.digests(self._digest, paths, self._map)
        return self._map(self._digest, paths)

    def _map(self, fn: Callable[[Any], str], items: list[Any]) -> list[str]:
        if len(items) <= 2 or self._threads <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=self._threads) as pool:  # hashlib releases the GIL
            return list(pool.map(fn, items))

    def read(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(idx), self.n_leads, self.n_samples), dtype=np.float32)
        bad = read_parallel(self.read_one, idx, out, threads=self._threads)
        if bad:
            names = [self.path(int(idx[i])) for i in bad]
            if self._c.nonfinite != "zero":
                raise DataError(
                    f"{len(bad)} record(s) contain NaN/inf samples, e.g. {names[:3]}; pass "
                    "nonfinite='zero' to set them to 0 or nonfinite='drop' (with lazy=False) to drop them"
                )
            warnings.warn(f"set NaN/inf samples to 0 in {len(bad)} record(s): {names[:5]}", stacklevel=2)
            out[bad] = np.nan_to_num(out[bad], nan=0.0, posinf=0.0, neginf=0.0)
        return out


def file_digest(path: str) -> str:
    """Digester for one-file-per-record formats (``.npy``, ``.npz``, ...): the file's raw bytes."""
    return files_digest([path])


def read_parallel(
    read_one: Callable[[int], np.ndarray], positions: np.ndarray, out: np.ndarray, *, threads: int = 4
) -> list[int]:
    """Fill ``out[i] = read_one(positions[i])`` with a thread pool; return rows with NaN/inf."""

    def work(i: int) -> bool:
        out[i] = read_one(int(positions[i]))
        return not np.isfinite(out[i]).all()

    if len(positions) <= 2 or threads <= 1:
        flags = [work(i) for i in range(len(positions))]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            flags = list(pool.map(work, range(len(positions))))
    return [i for i, f in enumerate(flags) if f]


class LoadedSignals(NamedTuple):
    """A loader's signals: the source, the mask of the records it kept, notes for the user."""

    source: SignalSource
    #: One flag per listed record: ``False`` where ``nonfinite="drop"`` dropped it (the source
    #: holds the kept records only).
    keep: np.ndarray
    notes: list[str]


def load_signals(
    source: FileSource,
    *,
    lazy: bool | Literal["auto"] = "auto",
    nonfinite: NonFinitePolicy = "error",
    ids: Sequence[str] | None = None,
) -> LoadedSignals:
    """Keep ``source`` lazy or read it whole; apply the non-finite policy.

    ``lazy="auto"`` reads into memory when the signals take less than 2 GiB.

    Returns:
        ``(source, keep, notes)``: the (possibly in-memory) source, a boolean mask of records
        kept (all True unless ``nonfinite="drop"`` dropped some) and notes for the user.
        :func:`~ecgprobe.data.loading.finish` takes it as it is.

    Raises:
        ConfigError: ``nonfinite="drop"`` with ``lazy=True`` (dropping needs a full scan).
        DataError: ``nonfinite="error"`` and some record has NaN/inf samples (named).
    """
    n = len(source)
    nbytes = n * source.n_leads * source.n_samples * 4
    is_lazy = nbytes > LAZY_THRESHOLD_BYTES if lazy == "auto" else bool(lazy)
    keep = np.ones(n, dtype=bool)
    if is_lazy:
        if nonfinite == "drop":
            raise ConfigError(
                "nonfinite='drop' needs every record scanned at load time; pass lazy=False "
                "(needs the signals to fit in memory) or nonfinite='zero'/'error'"
            )
        return LoadedSignals(source, keep, [f"signals are read lazily ({nbytes / 1024**3:.1f} GiB in total)"])
    data = np.empty((n, source.n_leads, source.n_samples), dtype=np.float32)
    bad = read_parallel(source.read_one, np.arange(n), data, threads=source._threads)
    notes: list[str] = []
    if bad:
        names = [str(ids[i]) if ids is not None else source.path(i) for i in bad]
        if nonfinite == "error":
            raise DataError(
                f"{len(bad)} record(s) contain NaN/inf samples: {names[:10]}; pass nonfinite='drop' "
                "to drop them or nonfinite='zero' to set those samples to 0"
            )
        if nonfinite == "drop":
            keep[bad] = False
            notes.append(f"dropped {len(bad)} record(s) with NaN/inf samples: {names[:10]}")
        else:
            data[bad] = np.nan_to_num(data[bad], nan=0.0, posinf=0.0, neginf=0.0)
            notes.append(f"set NaN/inf samples to 0 in {len(bad)} record(s): {names[:10]}")
        if notes:
            warnings.warn(notes[-1], stacklevel=2)
    if bad:  # some rows differ from their files' decoding: digest the samples
        return LoadedSignals(ArraySource(data[keep] if not keep.all() else data, owned=True), keep, notes)
    # unchanged decodings of the files: keyed like the lazy source, so caches are shared
    return LoadedSignals(ArraySource(data, owned=True, decoded_from=source), keep, notes)
