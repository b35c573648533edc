"""Atomic outputs: a command that fails half-way must leave no partial file or directory behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from snnconvert.errors import InputError, SnnConvertError


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _check_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        # a path under a regular file (some_file.txt/out.json) names the file, not the missing dir
        blocker = next((a for a in parent.parents if a.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise InputError(f"{path}: cannot write there: {blocker} is a file, not a directory")
        raise InputError(f"{path}: output directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write there: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: output directory {parent} is not writable")


def check_output(path: str | Path | None, kind: str = "file") -> None:
    """Fail early, before any work, if `path` (a file, or a directory with kind="dir") cannot be
    written: a command that runs for minutes should not fail at its last step."""
    if path is None:
        return
    path = Path(path)
    _check_parent(path)
    if kind == "file" and path.is_dir():
        raise InputError(f"{path}: is a directory (expected a file name to write)")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory")


def _os_error(path: Path, e: OSError) -> InputError:
    return InputError(f"{path}: cannot write ({e.strerror or type(e).__name__})")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same directory; rename it onto `path` only on success."""
    path = Path(path)
    check_output(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    except OSError as e:
        raise _os_error(path, e) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        try:
            yield tmp_path
            os.replace(tmp_path, path)
        except OSError as e:  # disk full, quota, I/O error while writing
            raise _os_error(path, e) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Deterministic JSON (sorted keys) so equal results give byte-identical files."""
    write_text(path, json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `path`; on success it replaces `path` whole. On failure
    `path` is left as it was (absent, or the old directory intact)."""
    path = Path(path)
    check_output(path, kind="dir")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or "."))
    except OSError as e:
        raise _os_error(path, e) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            yield tmp
        except OSError as e:  # disk full, quota, I/O error while writing
            raise _os_error(path, e) from None
        except SnnConvertError as e:  # name the user's path, not the hidden temp directory
            if str(tmp) not in str(e):
                raise
            raise type(e)(str(e).replace(str(tmp), str(path))) from None
        try:
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent or "."))
                try:
                    os.replace(path, old / "d")
                except OSError:
                    old.rmdir()
                    raise
                try:
                    os.replace(tmp, path)
                except OSError:
                    os.replace(old / "d", path)  # put the old directory back
                    old.rmdir()
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except OSError as e:
            raise _os_error(path, e) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
