"""Reading WFDB records (``.hea`` + ``.dat``/``.mat``) fast and strictly.

WFDB format 16 (little-endian int16, samples interleaved by signal), which PTB-XL,
MIMIC-IV-ECG and the PhysioNet/CinC Challenge ``.mat`` files (format 16 behind a 24-byte MATLAB
header) use, is read directly with NumPy: the header is parsed once, the file size is checked
against it (truncated or over-long files are refused), the per-signal checksums are verified
(a corrupt file is refused) and the invalid-sample marker ``-32768`` becomes NaN. Any other
format falls back to the ``wfdb`` package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgprobe.data.leads import canonical_leads
from ecgprobe.data.record import files_digest
from ecgprobe.exceptions import DataError

__all__ = ["Header", "SignalSpec", "read_header", "read_record", "wfdb_digest", "wfdb_reader"]

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3, "nu": 1.0, "": 1.0}
_SIG_RE = re.compile(
    r"^(?P<file>\S+)\s+(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<off>\d+))?"
    r"(?:\s+(?P<gain>[-+\d.eE]+)(?:\((?P<base>[-+\d]+)\))?(?:/(?P<units>\S+))?"
    r"(?:\s+(?P<res>\d+)(?:\s+(?P<zero>[-+\d]+)(?:\s+(?P<init>[-+\d]+)"
    r"(?:\s+(?P<cks>[-+\d]+)(?:\s+(?P<bsize>\d+)(?:\s+(?P<desc>.*))?)?)?)?)?)?)?\s*$"
)


@dataclass(frozen=True)
class SignalSpec:
    """One signal line of a WFDB header."""

    file: str
    fmt: int
    samples_per_frame: int
    byte_offset: int
    gain: float
    baseline: int
    units: str
    adc_zero: int
    checksum: int | None
    name: str


@dataclass(frozen=True)
class Header:
    """A parsed WFDB header: record line, signal lines and ``#`` comment lines."""

    path: Path
    record: str
    n_signals: int
    fs: float
    n_samples: int
    signals: tuple[SignalSpec, ...]
    comments: tuple[str, ...] = field(default=())

    @property
    def lead_names(self) -> tuple[str, ...]:
        """Canonical lead names of the signals, in file order."""
        return canonical_leads([s.name for s in self.signals], where=str(self.path))

    def comment(self, key: str) -> str | None:
        """The value of a ``# Key: value`` comment line (case-insensitive key), or None."""
        k = key.lower()
        for line in self.comments:
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() == k:
                return value.strip()
        return None


def read_header(path: str | Path) -> Header:
    """Parse a ``.hea`` file.

    Raises:
        DataError: naming the file when it is missing or malformed.
    """
    p = Path(path)
    if p.suffix != ".hea":
        p = p.with_suffix(".hea") if p.suffix in (".dat", ".mat", "") else Path(str(p) + ".hea")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise DataError(
            f"header file {p} does not exist; check the dataset root and the record list"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read header {p}: {exc}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    comments = tuple(ln.lstrip("#").strip() for ln in lines if ln.startswith("#"))
    body = [ln for ln in lines if ln and not ln.startswith("#")]
    if not body:
        raise DataError(f"header {p} is empty; the record is incomplete, re-download it")
    rec = body[0].split()
    try:
        if "/" in rec[0]:
            raise DataError(f"{p}: multi-segment records are not supported; convert them to one segment")
        n_sig = int(rec[1])
        fs = float(re.split(r"[/(]", rec[2])[0]) if len(rec) > 2 else 250.0
        n_samples = int(rec[3]) if len(rec) > 3 else -1
    except (IndexError, ValueError):
        raise DataError(
            f"{p}: malformed record line {body[0]!r}; expected 'name n_sig fs n_samples'"
        ) from None
    if len(body) - 1 < n_sig:
        raise DataError(
            f"{p}: header declares {n_sig} signals but lists {len(body) - 1}; the header is truncated"
        )
    specs = []
    for i, line in enumerate(body[1 : 1 + n_sig]):
        m = _SIG_RE.match(line)
        if not m:
            raise DataError(f"{p}: malformed signal line {i + 1}: {line!r}")
        g = m.groupdict()
        adc_zero = int(g["zero"]) if g["zero"] else 0
        gain = float(g["gain"]) if g["gain"] else 200.0
        specs.append(
            SignalSpec(
                file=g["file"],
                fmt=int(g["fmt"]),
                samples_per_frame=int(g["spf"] or 1),
                byte_offset=int(g["off"] or 0),
                gain=gain if gain != 0 else 200.0,
                baseline=int(g["base"]) if g["base"] else adc_zero,
                units=(g["units"] or "mV"),
                adc_zero=adc_zero,
                checksum=int(g["cks"]) if g["cks"] else None,
                name=(g["desc"] or f"ch{i + 1}").strip(),
            )
        )
    return Header(p, rec[0], n_sig, fs, n_samples, tuple(specs), comments)


def _fast_path(h: Header) -> bool:
    files = {s.file for s in h.signals}
    return (
        len(files) == 1
        and all(s.fmt == 16 and s.samples_per_frame == 1 for s in h.signals)
        and len({s.byte_offset for s in h.signals}) == 1
        and h.n_samples >= 0
    )


def _units_scale(spec: SignalSpec, path: Path) -> float:
    key = spec.units.lower()
    if key not in _UNIT_TO_MV:
        raise DataError(f"{path}: signal {spec.name!r} has units {spec.units!r}; expected mV, uV or V")
    return _UNIT_TO_MV[key]


def read_record(path: str | Path, *, verify_checksum: bool = True) -> tuple[np.ndarray, Header]:
    """Read one WFDB record as ``(n_signals, n_samples)`` float32 in mV, with its header.

    Physical value = ``(digital - baseline) / gain``, scaled to mV from the header's units.
    Samples equal to format 16's invalid marker (-32768) become NaN.

    Raises:
        DataError: naming the file when it is missing, truncated, longer than the header says,
            or fails its checksum (corrupt).
    """
    h = read_header(path)
    if not _fast_path(h):
        return _read_with_wfdb(h), h
    dat = h.path.parent / h.signals[0].file
    offset = h.signals[0].byte_offset
    n_sig = h.n_signals
    try:
        size = dat.stat().st_size
    except FileNotFoundError:
        raise DataError(
            f"signal file {dat} (listed in {h.path.name}) does not exist; the record is incomplete"
        ) from None
    expected = offset + 2 * n_sig * h.n_samples
    if size != expected:
        found = (size - offset) // (2 * n_sig) if size >= offset else 0
        what = "truncated" if size < expected else "longer than its header says"
        raise DataError(
            f"{dat} is {what}: header {h.path.name} declares {h.n_samples} samples x {n_sig} signals "
            f"({expected} bytes) but the file holds {size} bytes (~{found} samples); "
            "re-download or repair the record"
        )
    raw = np.fromfile(dat, dtype="<i2", count=n_sig * h.n_samples, offset=offset)
    digital = raw.reshape(h.n_samples, n_sig).T
    if verify_checksum:
        sums = digital.sum(axis=1, dtype=np.int64) & 0xFFFF
        for i, spec in enumerate(h.signals):
            if spec.checksum is not None and sums[i] != (spec.checksum & 0xFFFF):
                raise DataError(
                    f"{dat}: checksum of signal {spec.name!r} does not match its header "
                    "(the file is corrupt); re-download the record"
                )
    gain = np.array([s.gain for s in h.signals], dtype=np.float64)[:, None]
    base = np.array([s.baseline for s in h.signals], dtype=np.float64)[:, None]
    scale = np.array([_units_scale(s, h.path) for s in h.signals], dtype=np.float64)[:, None]
    out = ((digital - base) / gain * scale).astype(np.float32)
    invalid = digital == -32768
    if invalid.any():
        out[invalid] = np.nan
    return out, h


def _read_with_wfdb(h: Header) -> np.ndarray:
    import wfdb

    try:
        rec = wfdb.rdrecord(str(h.path.with_suffix("")), physical=True)
    except FileNotFoundError as exc:
        raise DataError(
            f"a signal file of {h.path} does not exist ({exc}); the record is incomplete"
        ) from None
    except Exception as exc:  # wfdb raises a zoo of types for bad files
        raise DataError(
            f"cannot read record {h.path.with_suffix('')}: {exc}; the files may be corrupt"
        ) from None
    scale = np.array([_UNIT_TO_MV.get((u or "mV").lower(), 1.0) for u in rec.units], dtype=np.float32)
    return (rec.p_signal.T.astype(np.float32) * scale[:, None]).astype(np.float32)


def wfdb_reader(path: str) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """Reader for :class:`~ecgprobe.data.sources.FileSource`: ``path -> (signals, fs, leads)``."""
    x, h = read_record(path)
    return x, h.fs, h.lead_names


def wfdb_digest(path: str) -> str:
    """Content digest of a WFDB record for :class:`~ecgprobe.data.sources.FileSource`: the raw
    bytes of its header and of every signal file the header lists (nothing is decoded).

    Raises:
        DataError: naming the header or signal file that is missing or unreadable.
    """
    h = read_header(path)
    files = dict.fromkeys(h.path.parent / s.file for s in h.signals)
    return files_digest([h.path, *files])
