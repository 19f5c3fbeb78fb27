"""Writes that never leave a half-written file behind: temp file in the same folder, then rename."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temp file beside `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    kwargs = {} if "b" in mode else {"encoding": encoding}
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is None:  # numpy's short write says only sizes
            raise OSError(errno.EIO, f"not written in full ({e}; is the disk full?)",
                          str(path)) from None
        if isinstance(e, OSError) and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


@contextmanager
def staged_dir(path: str | Path):
    """Yield a temp directory beside `path`; on success it replaces `path` whole (the old one
    is removed only after), on failure it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def dir_lock(folder: str | Path):
    """An exclusive lock on `folder/.lock`, so two writers never interleave."""
    with file_lock(Path(folder) / ".lock"):
        yield


@contextmanager
def file_lock(path: str | Path):
    """An exclusive flock on `path` (created if absent). When the file was replaced while
    this waited (a folder swapped by a rebuild), the lock is taken again on the new one."""
    import fcntl

    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only folder: say what could not be done
            raise OSError(e.errno, f"cannot be written ({e.strerror})", str(path.parent)) \
                from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # closing releases the lock
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(path: str | Path, fmt: str, version: int, what: str,
                  error: type[Exception]) -> dict:
    """Read `path/manifest.json` and check its format and version; errors name the problem."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise error(f"{path}: no {what} directory there")
    if not mpath.is_file():
        raise error(f"{path}: not a deepbow {what} (no manifest.json)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise error(f"{mpath}: corrupt manifest ({e})") from None
    except OSError as e:
        raise error(f"{mpath}: cannot read the manifest ({e.strerror})") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != fmt:
        raise error(f"{mpath}: format is {found!r}, expected {fmt!r}")
    if manifest.get("format_version") != version:
        raise error(f"{mpath}: format_version {manifest.get('format_version')!r} is not "
                    f"supported (this deepbow reads version {version})")
    return manifest


def check_listed_files(path: str | Path, names, manifest: dict, verify: bool,
                       error: type[Exception]) -> None:
    """Every named file exists and, with verify, matches the sha256 the manifest lists."""
    path = Path(path)
    files = manifest.get("files", {})
    for f in names:
        fp = path / f
        if not fp.is_file():
            raise error(f"{path}: missing file {f}")
        if verify and sha256_file(fp) != files.get(f):
            raise error(f"{fp}: checksum mismatch (corrupt or edited file)")
