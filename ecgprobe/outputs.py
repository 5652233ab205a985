"""Output folders: every file a command writes is declared, checked before any work, and written
all-or-nothing.

An :class:`Output` is told every file (or glob pattern) it will write into one folder. Its
:meth:`~Output.check` runs before any extraction or analysis: it refuses files that already exist
(listing them) unless ``force``, refuses a folder that is a file or sits under one, and proves the
folder writable by creating and deleting a probe file, leaving nothing behind. Its
:meth:`~Output.staged` context writes everything into a hidden staging folder inside the target and
moves the files into place only when all of them were written; on any failure (disk full, a folder
turned read-only, an interrupt) the staging folder is removed and the target keeps exactly what it
held before, so a partial output is never passed off as complete. Operating-system failures become
one :class:`~ecgprobe.exceptions.OutputError` naming the path and the fix.

Names that come from configs and become paths go through :func:`safe_name`.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ecgprobe.exceptions import ConfigError, EcgprobeError, OutputError

__all__ = ["REPORT_FORMATS", "Output", "describe_os_error", "parse_formats", "safe_name"]

#: The formats a report is written in.
REPORT_FORMATS: tuple[str, ...] = ("html", "pdf")

#: Prefix of the staging folder (hidden; removed on success and on failure).
STAGING_PREFIX = ".ecgprobe-partial-"
_PROBE_PREFIX = ".ecgprobe-write-test-"
_WILDCARDS = ("*", "?", "[")


def _reason(exc: OSError, *, writing: bool = True) -> tuple[str, str]:
    """(what went wrong, how to fix it) for an operating-system error, in words."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        if not writing:
            return "permission denied", "check its permissions (and those of the folders above it)"
        return "permission denied", "make it writable or choose another folder"
    if code == errno.EROFS:
        return "the file system is read-only", "choose a folder on a writable disk"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "no space left on the device, or over the disk quota", (
            "free some space or choose a folder on a disk with room"
        )
    if code in (errno.ENOTDIR, errno.EEXIST):
        return "a file is in the way of a folder", "move the file away or choose another folder"
    if code == errno.EISDIR:
        return "a folder is in the way of a file", "move the folder away or choose another folder"
    if code == errno.ENAMETOOLONG:
        return "the path is too long", "choose a shorter path"
    if code == errno.ENOENT:
        return "no such file or folder", "check the path"
    return (exc.strerror or type(exc).__name__), "check the path and its permissions"


def _short(path: object, limit: int = 160) -> str:
    """A path for a message: whole when reasonable, else its start and end (a 5,000-character
    path would bury the message)."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 3 :]}"


def describe_os_error(exc: OSError, path: str | Path | None = None, *, writing: bool = False) -> str:
    """One line for an operating-system error: the path, what went wrong and the fix.

    Args:
        exc: the error.
        path: the path to name when the error does not carry one.
        writing: whether the path was being written (the fix differs).

    Example:
        >>> describe_os_error(PermissionError(13, "Permission denied", "/data/x"))
        '/data/x: permission denied; check its permissions (and those of the folders above it)'
    """
    where = exc.filename if exc.filename is not None else path
    why, fix = _reason(exc, writing=writing)
    return f"{_short(where)}: {why}; {fix}" if where is not None else f"{why}; {fix}"


def _missing_parents(folder: Path) -> list[Path]:
    """The folders that ``folder.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    p = folder
    while not (p.exists() or p.is_symlink()) and p != p.parent:
        missing.append(p)
        p = p.parent
    return missing


def _remove_empty(folders: Sequence[Path]) -> None:
    for d in folders:  # deepest first; a folder something else wrote into stays
        try:
            d.rmdir()
        except OSError:
            break


class Output:
    """The files one command writes into one folder.

    Args:
        folder: the output folder (created when needed; never left behind empty by a failure).
        names: every file the command writes, relative to ``folder`` (``"linear/results.json"``),
            or glob patterns for names known only later (``"embeddings.*.npy"``).
        force: replace files that exist instead of refusing.
        option: how the user names the folder, for messages (``"--out"``, ``"out:"``).

    Example:
        >>> out = Output(tmp_path / "probe", ["results.json", "results.npz"]).check()  # doctest: +SKIP
        >>> result = run_the_analysis()  # doctest: +SKIP
        >>> with out.staged() as tmp:  # doctest: +SKIP
        ...     result.save(tmp / "results.json")
    """

    def __init__(
        self, folder: str | Path, names: Sequence[str], *, force: bool = False, option: str = "--out"
    ) -> None:
        if isinstance(names, str) or not names:
            raise TypeError("Output needs the list of file names the command writes")
        self.folder = Path(folder).expanduser()
        self.names = tuple(str(n) for n in names)
        self.force = bool(force)
        self.option = option

    def path(self, name: str) -> Path:
        """Where ``name`` ends up once written."""
        return self.folder / name

    def existing(self) -> list[str]:
        """The declared outputs already in the folder (relative paths, sorted)."""
        if not self.folder.is_dir():
            return []
        found: set[str] = set()
        for name in self.names:
            if any(w in name for w in _WILDCARDS):
                found.update(p.relative_to(self.folder).as_posix() for p in self.folder.glob(name))
            elif (self.folder / name).exists() or (self.folder / name).is_symlink():
                found.add(name)
        return sorted(found)

    def _where(self) -> str:
        return f"{self.option} {_short(self.folder)}"

    def _error(self, exc: OSError, *, staged: Path | None = None, when: str = "") -> OutputError:
        where = None if exc.filename is None else Path(exc.filename)
        if where is not None and staged is not None and staged in where.parents:
            where = self.folder / where.relative_to(staged)  # the name the user will look for
        if where is not None and where.name.startswith((_PROBE_PREFIX, STAGING_PREFIX)):
            where = None
        why, fix = _reason(exc)
        what = why if where is None or where == self.folder else f"{_short(where)}: {why}"
        return OutputError(
            f"cannot write to {self._where()} ({what}){when}; {fix.replace('another folder', 'another ' + self.option)}"
        )

    def _check_folder(self) -> None:
        p = self.folder
        if p.exists() and not p.is_dir():
            raise OutputError(
                f"{self._where()} is a file, not a folder; choose another {self.option} or move the file away"
            )
        for parent in p.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(
                        f"{self._where()} cannot be created: {parent} is a file, not a folder; "
                        f"choose another {self.option}"
                    )
                break
        for name in self.names:
            for rel in Path(name).parents:
                inner = p / rel
                if str(rel) != "." and inner.exists() and not inner.is_dir():
                    raise OutputError(
                        f"{self._where()}: {inner} is a file where the folder {rel}/ goes; "
                        f"move it away or choose another {self.option}"
                    )

    def check(self) -> Output:
        """Refuse existing outputs (unless ``force``) and unwritable folders, before any work.

        The folder is created to prove it can be, probed with a file that is deleted at once, and
        removed again when it did not exist: a check that fails, or a command that fails later,
        leaves the file system as it found it.

        Returns:
            self, for chaining.

        Raises:
            ConfigError: declared outputs exist and ``force`` is false (they are listed).
            OutputError: the folder is a file, or lies under one, is read-only, or cannot be
                created (permission, disk full, path too long).
        """
        try:
            self._check_folder()
            existing = self.existing()
        except OutputError:
            raise
        except OSError as exc:  # e.g. a path too long to even look at
            raise self._error(exc, when=", checked before any work") from None
        if existing and not self.force:
            shown = ", ".join(existing[:8]) + (f" and {len(existing) - 8} more" if len(existing) > 8 else "")
            raise ConfigError(
                f"{self._where()} already holds {shown}; pass --force to overwrite "
                f"(force=True in Python) or choose another {self.option}"
            )
        folders = [e for e in existing if (self.folder / e).is_dir() and not (self.folder / e).is_symlink()]
        if folders:
            raise OutputError(
                f"{self._where()}: {', '.join(folders)} {'is a folder' if len(folders) == 1 else 'are folders'} "
                f"where a file goes; move {'it' if len(folders) == 1 else 'them'} away or choose another {self.option}"
            )
        missing = _missing_parents(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.folder, prefix=_PROBE_PREFIX)
            os.close(fd)
            Path(probe).unlink()
        except OSError as exc:
            raise self._error(exc, when=", checked before any work") from None
        finally:
            _remove_empty(missing)
        return self

    @contextmanager
    def staged(self) -> Iterator[Path]:
        """A staging folder to write every output into; moved into place when the block succeeds.

        Raises:
            ConfigError, OutputError: as :meth:`check` (run again: the folder may have changed),
                and an :class:`OutputError` for any operating-system failure while writing, after
                which the folder holds exactly what it held before.
            RuntimeError: the block wrote a file that was not declared (a bug in the caller).
        """
        self.check()
        missing = _missing_parents(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.folder, prefix=STAGING_PREFIX))
        except OSError as exc:
            _remove_empty(missing)
            raise self._error(exc) from None
        ok = False
        try:
            yield tmp
            self._commit(tmp)
            ok = True
        except EcgprobeError:
            raise
        except OSError as exc:
            raise self._error(exc, staged=tmp, when="; nothing was written") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if not ok:
                _remove_empty(missing)

    def _commit(self, tmp: Path) -> None:
        files = sorted(p for p in tmp.rglob("*") if not p.is_dir())
        rels = [p.relative_to(tmp).as_posix() for p in files]
        undeclared = [r for r in rels if not any(fnmatch.fnmatchcase(r, n) for n in self.names)]
        if undeclared:
            raise RuntimeError(f"wrote outputs that were not declared to Output: {undeclared}")
        clash = [r for r in rels if (self.folder / r).exists()] if not self.force else []
        if clash:  # appeared while the command ran
            raise ConfigError(
                f"{self._where()} gained {', '.join(clash)} while this command ran; nothing was written; "
                f"pass --force to overwrite or choose another {self.option}"
            )
        for src, rel in zip(files, rels):
            dst = self.folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dst)
        try:  # make the renames durable (not supported everywhere; harmless where not)
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


_SEPARATORS = re.compile(r"[\\/]")
_UNSAFE = re.compile(r"[^\w.+@=-]+")
_MAX_NAME = 120


def safe_name(value: object, *, what: str) -> str:
    """``value`` as one safe path component (a folder or file name inside an output folder).

    Separators, spaces and other characters that are not letters, digits or ``._+@=-`` become
    ``-``. A value that could leave the output folder (absolute, a drive, ``..``) is refused, not
    rewritten, and so are empty and overlong ones.

    Args:
        value: the name, e.g. a study's dataset or encoder label.
        what: where it came from, for the message (``"datasets[0].label"``).

    Raises:
        ConfigError: naming ``what``, the value and the fix.

    Example:
        >>> safe_name("ptbxl/superclass", what="label")
        'ptbxl-superclass'
    """
    text = str(value).strip()
    parts = _SEPARATORS.split(text)
    if text.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", text) or ".." in parts:
        raise ConfigError(
            f"{what} {text!r} would write outside the output folder; use a plain name such as "
            f"{_UNSAFE.sub('-', parts[-1]).strip('-.') or 'my-name'!r}"
        )
    clean = _UNSAFE.sub("-", "-".join(p for p in parts if p)).strip("-.")
    if not clean:
        raise ConfigError(f"{what} {text!r} gives an empty folder name; use letters or digits")
    if len(clean) > _MAX_NAME:
        raise ConfigError(f"{what} is {len(clean)} characters long; use at most {_MAX_NAME}")
    return clean


def parse_formats(value: str | Sequence[str], *, option: str = "--format") -> tuple[str, ...]:
    """Report formats from ``"html,pdf"`` (or a sequence): a non-empty selection of
    :data:`REPORT_FORMATS`.

    Raises:
        ConfigError: an unknown or missing format, naming ``option``.
    """
    from ecgprobe.settings import split_list

    formats = tuple(split_list(value, option=option) or ())
    if not formats or set(formats) - set(REPORT_FORMATS):
        raise ConfigError(f"{option} must be html, pdf or html,pdf; got {value!r}")
    return formats
