"""File-system primitives of the dataset: the root lock, atomic writes that honour the umask,
refusal of symlinked control files, meta-file reading and cheap PNG header reads.

Why these exist instead of ``tempfile`` / ``open``:

* ``tempfile.mkstemp`` creates files with mode 0600 whatever the umask, and a rename keeps
  that mode, so a dataset written by a ComfyUI service account could not be read by another
  user's training job. :func:`create_temporary` creates with 0666 and lets the kernel apply
  the umask, exactly as an ordinary ``open()`` does.
* ``manifest.jsonl`` and ``.lock`` are opened with ``O_NOFOLLOW``: a symlink there (for
  instance to a file outside the root) is refused with a clear :class:`DatasetError` instead
  of being appended to.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import Iterator

from .layout import (LOCK_NAME, MANIFEST_NAME, META_DIR, REJECTED_DIR, TMP_PREFIX, DatasetError)

__all__ = ["MetaFileError", "root_lock", "open_control_file", "create_temporary",
           "temporary_owner_gone", "write_file_atomic", "read_meta_file", "png_size", "MISSING",
           "scan_names", "require_dataset"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows: there an islink() check is used
_BINARY = getattr(os, "O_BINARY", 0)      # Windows only
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Files are created with this mode; the kernel removes the umask's bits from it.
_FILE_MODE = 0o666

#: Largest meta file read (real ones are a few KB; a bigger file is not a meta file).
MAX_META_BYTES = 16 * 2 ** 20
#: Returned by :func:`png_size` when there is no such regular file.
MISSING = "missing"


class MetaFileError(ValueError):
    """A meta file that exists but cannot be used (empty, not JSON, not an object, wrong id).

    ``denied`` is True when the file system refused to let this user read it: the file may
    be fine (written by another user with a narrower umask) and must not be replaced.
    """

    def __init__(self, message: str, *, denied: bool = False):
        super().__init__(message)
        self.denied = denied


# --------------------------------------------------------------------------------------------
# Control files (manifest, lock): never through a symlink
# --------------------------------------------------------------------------------------------

def _refuse_link(path: Path) -> None:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    fix = ("delete it: it is recreated" if path.name == LOCK_NAME else
           "delete it and run `ld-portrait dataset verify --repair` to rebuild it from meta/")
    raise DatasetError(
        f"{path} is a symbolic link (to {target}); the dataset does not follow links for "
        f"{path.name}, which could write outside the dataset folder. Replace it with a regular "
        f"file: {fix}.")


def open_control_file(path, flags: int) -> int:
    """``os.open`` for ``manifest.jsonl`` / ``.lock`` that refuses a symlink.

    Parameters
    ----------
    path : str or Path
    flags : int
        ``os.O_*`` flags; ``O_NOFOLLOW`` is added. Files are created 0666 minus the umask.

    Returns
    -------
    int
        An open file descriptor.

    Raises
    ------
    DatasetError
        ``path`` is a symbolic link (dangling or not).
    OSError
        Any other failure to open.
    """
    path = Path(path)
    if not _NOFOLLOW and path.is_symlink():  # pragma: no cover - Windows
        _refuse_link(path)
    try:
        return os.open(path, flags | _NOFOLLOW | _BINARY | _CLOEXEC, _FILE_MODE)
    except OSError as error:
        # ELOOP on Linux/macOS, EMLINK on FreeBSD; a dangling link with O_CREAT gives EEXIST
        # only with O_EXCL, so check the path itself before guessing.
        if error.errno in (errno.ELOOP, errno.EMLINK) or path.is_symlink():
            _refuse_link(path)
        raise


try:  # pragma: no cover - the branch taken depends on the platform
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
except ImportError:  # pragma: no cover
    import msvcrt

    def _lock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for ~10 s, then raises
                return
            except OSError:
                time.sleep(0.05)

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextlib.contextmanager
def root_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on ``<root>/.lock`` shared by every process and writer on this root
    (fcntl on POSIX, msvcrt on Windows where ComfyUI is often installed)."""
    fd = open_control_file(Path(root) / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        _lock_fd(fd)
        try:
            yield
        finally:
            _unlock_fd(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    """8 hex digits naming this machine in temporary file names (a dataset may live on a
    share that several machines write)."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


#: ``.tmp-<host tag>-<pid>-<random><suffix>``: who created a temporary file.
_OWNED_TEMPORARY = re.compile(r"^\.tmp-([0-9a-f]{8})-([0-9]+)-")


def _process_gone(pid: int) -> bool:
    """True when no process ``pid`` runs on this machine (POSIX; False where unknown)."""
    if os.name != "posix" or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, another user's
        return False
    return False


def temporary_owner_gone(name: str) -> bool:
    """True when the temporary file ``name`` was created on this machine by a process that no
    longer runs (killed in the middle of a write): nobody will ever rename it, so it may be
    deleted at once. False for another machine's files, a running writer's and names of an
    older version (those are only deleted once old, see
    :func:`.reading.remove_stale_temporary`)."""
    match = _OWNED_TEMPORARY.match(name)
    return bool(match) and match.group(1) == _host_tag() and _process_gone(int(match.group(2)))


def create_temporary(folder, suffix: str = "") -> tuple[int, str]:
    """Create a new hidden temporary file ``<folder>/.tmp-<host>-<pid>-<random><suffix>``.

    Like ``tempfile.mkstemp`` (private random name, ``O_EXCL``) but created with mode 0666
    minus the umask, so the file keeps the permissions an ordinary file would get after it
    is renamed into place. The name says which machine and process created it, so that a
    file left by a killed writer can be told from one a running writer is still using
    (:func:`temporary_owner_gone`).

    Returns
    -------
    (int, str)
        Open write-only descriptor and the file's path.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY | _CLOEXEC
    for _ in range(100):
        path = os.path.join(folder, f"{TMP_PREFIX}{_host_tag()}-{os.getpid()}-"
                                    f"{secrets.token_hex(8)}{suffix}")
        try:
            return os.open(path, flags, _FILE_MODE), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary file name in {folder}")


def write_file_atomic(path, payload: bytes, *, durable: bool = True) -> Path:
    """Write ``payload`` to ``path`` through a temporary file (umask honoured) and a rename."""
    path = Path(path)
    fd, tmp = create_temporary(path.parent, path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def read_meta_file(path, sample_id: str | None = None) -> dict:
    """Parse a meta file and check that it is a JSON object for ``sample_id``.

    Raises
    ------
    FileNotFoundError
        No such file.
    MetaFileError
        Empty, unreadable, not a regular file, over :data:`MAX_META_BYTES`, not valid JSON,
        not an object, or its ``id`` is not ``sample_id``;
        the message says which (without the path: callers name the file).
    """
    try:
        # O_NONBLOCK: a FIFO named <id>.json must not hang the reader; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | _BINARY | _CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(errno.ENOENT, "no such meta file", os.fspath(path)) from None
    except OSError as error:
        raise MetaFileError(f"cannot be read ({error.strerror or error})",
                            denied=isinstance(error, PermissionError)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MetaFileError("is not a regular file")
        if info.st_size > MAX_META_BYTES:
            raise MetaFileError(f"is {info.st_size / 2 ** 20:.0f} MiB, far larger than a meta "
                                f"file (limit {MAX_META_BYTES // 2 ** 20} MiB)")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise MetaFileError(f"cannot be read ({error.strerror or error})") from None
    finally:
        os.close(fd)
    if not data.strip():
        raise MetaFileError("is empty")
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise MetaFileError(f"is not valid JSON ({str(error)[:80]})") from None
    if not isinstance(meta, dict):
        raise MetaFileError(f"holds a JSON {type(meta).__name__}, not an object")
    if sample_id is not None and meta.get("id") != sample_id:
        raise MetaFileError(f"records the id {meta.get('id')!r}, not {sample_id!r}")
    return meta


def png_size(path) -> tuple[int, int] | str | None:
    """(width, height) from a PNG header without decoding.

    Returns :data:`MISSING` when there is no such regular file and None when the file is
    not a PNG. One ``open`` both proves existence and reads the header (no extra ``stat``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _BINARY)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return MISSING
    except OSError:
        return None
    try:
        head = os.read(fd, 24)
    except IsADirectoryError:  # POSIX opens folders read-only; reading them fails
        return MISSING
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def scan_names(folder: Path) -> tuple[set[str], list[str]]:
    """(stems of visible .png/.json files, names of temporary files) in ``folder``."""
    stems, temps = set(), []
    if folder.is_dir():
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(TMP_PREFIX):
                    temps.append(name)
                elif not name.startswith("."):
                    stems.add(os.path.splitext(name)[0])
    return stems, temps


def require_dataset(root) -> Path:
    """The resolved ``root`` after checking that it is a dataset folder.

    A dataset has at least one of ``meta/``, ``rejected/meta/``, ``manifest.jsonl`` or
    ``.lock`` (a writer creates the lock first, so a root it created but wrote nothing to
    still counts, with 0 samples).

    Raises
    ------
    DatasetError
        No such folder, or a folder that is not a dataset (the message says what to give).
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder.")
    markers = (root / META_DIR, root / REJECTED_DIR / META_DIR, root / MANIFEST_NAME,
               root / LOCK_NAME)
    if not any(os.path.lexists(marker) for marker in markers):
        raise DatasetError(
            f"{root} is not a dataset (no meta/ or manifest.jsonl in it). Give the folder that "
            "`ld-portrait refine` or the Save Matting Dataset node wrote (the one holding fg/, "
            "alpha/ and meta/).")
    return root
