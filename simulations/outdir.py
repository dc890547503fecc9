"""The output folder of a sweep: atomic writes, this project's own names, the lock.

Every file is first written under a temporary name in its own folder,
``.lowrank-theory.<name>.<pid>.<random>.tmp`` (created with the permissions the user's umask
gives, never through a symbolic link), then renamed into place with ``os.replace``, which is
atomic on POSIX: a reader sees the old file or the whole new one. A temporary of this project
whose process is gone is removed by the next sweep; files of other programs in the folder, even
``.*.tmp`` ones, are never touched. A write that fails names the file it was writing (a full
disk included), and leaves the previous version of that file in place.

While a sweep writes into an output folder it holds an exclusive lock on
``<out>/.lowrank-theory.lock`` (``fcntl.flock``; the file records the holder's pid). A second
process that wants the folder gets :class:`OutputLocked` at once instead of racing the first,
naming the process that holds the lock (read from the kernel's lock table where there is one),
or saying that it cannot tell.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Prefix of every file name of this project's own in a folder that may hold other programs'
#: files (the lock, temporaries): nothing else is ever deleted or overwritten there.
OWN_PREFIX = ".lowrank-theory."
#: Name of the lock file in an output folder.
LOCK_NAME = OWN_PREFIX + "lock"
# A temporary of this project: OWN_PREFIX, the final name, the writer's pid, 8 random hex digits.
_TEMPORARY = re.compile(re.escape(OWN_PREFIX) + r".+\.(\d+)\.[0-9a-f]{8}\.tmp")

__all__ = [
    "LOCK_NAME", "OWN_PREFIX", "OutputDirError", "OutputLocked", "atomic_write_bytes",
    "atomic_write_text", "check_output_dir", "ensure_folder", "output_lock",
    "remove_stale_temporaries",
]


class OutputDirError(ValueError):
    """The output folder, or a path the runner needs inside it, cannot be used as it is.

    The folder is a file, cannot be created or written; or a folder, file or link of the
    wrong kind sits where the runner keeps its own (``runs`` a file, a run file a folder, the
    lock a symbolic link). The message names the path and what to do.
    """


class OutputLocked(RuntimeError):
    """Another process holds the lock of the output folder."""


# --------------------------------------------------------------------------- atomic files
def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The temporary file is created with mode ``0o666`` less the umask, like any new file, and
    its name (``.lowrank-theory.<name>.<pid>.<random>.tmp``) holds this process's id, so
    concurrent writers never share a temporary and other programs' files are never mistaken
    for one.

    Raises
    ------
    OSError
        If the file cannot be written (a full disk: ``errno.ENOSPC``); its ``filename`` is
        ``path``, not the temporary, and the temporary is removed.
    """
    path = Path(path)
    ensure_folder(path.parent)
    tmp = path.parent / f"{OWN_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(tmp, flags, 0o666)
        try:
            try:
                _write_fully(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        # Name the file the caller asked for: the temporary means nothing to a reader.
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to someone else
        return True
    return True


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove this project's temporaries in ``directory`` whose writing process is gone.

    A SIGKILL between creating a temporary and renaming it leaves it behind. It is never read
    (only final names are), but it would accumulate. Only names this module gives its
    temporaries (see :func:`atomic_write_bytes`) are considered, and only regular files: other
    programs' files, ``.notes.tmp`` say, are never touched. A temporary of a live process
    (another writer) is kept.

    Returns
    -------
    list of Path
        The temporaries removed.
    """
    removed = []
    for tmp in directory.glob(OWN_PREFIX + "*.tmp"):
        match = _TEMPORARY.fullmatch(tmp.name)
        if match is None or tmp.is_symlink() or not tmp.is_file():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _process_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


# --------------------------------------------------------------------------- output folder
def check_output_dir(out: str | os.PathLike) -> Path:
    """Create the output folder ``out`` if needed and check that files can be written in it.

    Call it before any computation, so a bad ``--out`` fails at once, not after the work.

    Parameters
    ----------
    out : path-like
        The output folder.

    Returns
    -------
    Path
        ``out`` as a Path.

    Raises
    ------
    OutputDirError
        If ``out`` exists but is not a folder, cannot be created, or is not writable; the
        message names the folder and the reason.
    """
    path = Path(out)
    try:
        if path.exists() and not path.is_dir():
            raise OutputDirError(f"output folder {path} exists and is not a folder: "
                                 "give a folder, or a path that can be created")
        path.mkdir(parents=True, exist_ok=True)
    except OutputDirError:
        raise
    except OSError as exc:
        raise OutputDirError(f"cannot create output folder {path}: "
                             f"{exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=OWN_PREFIX + "write-check.",
                                     suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputDirError(f"output folder {path} is not writable: "
                             f"{exc.strerror or exc}") from None
    return path


def ensure_folder(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and its parents) if needed; return it.

    Raises
    ------
    OutputDirError
        If ``path`` or one of its parents exists but is not a folder (a file where the runner
        keeps ``runs/``, say), or the folder cannot be created; the message names the path.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputDirError(f"{path} exists and is not a folder, where one is needed: move "
                             "it away (or choose another --out) and rerun") from None
    except OSError as exc:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise OutputDirError(f"cannot create folder {path}: {blocker} is a file, not a "
                                 "folder; move it away (or choose another --out) and rerun"
                                 ) from None
        raise OutputDirError(f"cannot create folder {path}: {exc.strerror or exc}") from None
    return path


def _lock_table_holder(fd: int) -> int | None:
    """The pid the kernel's lock table (Linux ``/proc/locks``) gives for the flock on ``fd``."""
    st = os.fstat(fd)
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    exact, same_inode = set(), set()
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 3114 fd:01:1837110 0 EOF" (a "->" marks a waiter)
        fields = line.split()
        if "->" in fields or "FLOCK" not in fields or len(fields) < 6:
            continue
        i = fields.index("FLOCK")
        if i + 4 >= len(fields) or not fields[i + 3].isdigit():
            continue
        pid, where = int(fields[i + 3]), fields[i + 4]
        if where == device:
            exact.add(pid)
        elif where.rsplit(":", 1)[-1] == str(st.st_ino):
            same_inode.add(pid)  # some file systems (overlays) report another device number
    found = exact or same_inode
    return found.pop() if len(found) == 1 and min(found) > 0 else None


def _lock_holder(fd: int) -> str:
    """Who holds the flock on ``fd``: ``"process 1234"``, or says that it cannot tell."""
    pid = _lock_table_holder(fd)
    if pid is not None:
        return f"process {pid}"
    # No lock table: the pid the holder wrote, if that process is alive. (It may be stale: the
    # holder writes it just after it takes the lock.)
    try:
        written = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        written = ""
    if written.isdigit() and _process_alive(int(written)):
        return f"process {written} (as its lock file says)"
    return "another process (which one cannot be told here)"


# Locks this process holds, by real path, with their depth: flock locks belong to an open file,
# so a nested ``output_lock`` on the same folder (the CLI locks, then each sweep locks) would
# otherwise conflict with itself.
_HELD: dict[str, int] = {}


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the output folder ``out`` (which must exist) while inside.

    Re-entrant within a process. On systems without ``fcntl`` no lock is taken. The lock file
    is ``out/.lowrank-theory.lock``, opened without following a symbolic link; no other file
    of ``out`` is touched.

    Raises
    ------
    OutputLocked
        If another process holds the lock; the message names the folder and the holder's pid,
        or says that it cannot be told.
    OutputDirError
        If the lock file cannot be opened: it is a folder or a symbolic link, say.
    """
    path = Path(out)
    key = os.path.realpath(path)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    lock = path / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock, flags, 0o666)
    except OSError as exc:
        what = ("is a symbolic link" if lock.is_symlink() else "is a folder" if lock.is_dir()
                else f"cannot be opened ({exc.strerror or exc})")
        raise OutputDirError(f"the lock file {lock} {what}; this program keeps its lock there: "
                             "remove it (or choose another --out) and rerun") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputLocked(f"output folder {path} is in use by {_lock_holder(fd)} (lock "
                                   f"file {lock}); wait for it to finish or choose another "
                                   "output folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = 1
        try:
            yield path
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # releases the flock
