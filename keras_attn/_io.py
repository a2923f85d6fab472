"""Atomic writes: build in a temporary sibling, then rename into place (used by every writer)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import shutil
import tempfile


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Swaps two paths in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`); False if the
    platform or filesystem cannot."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _default_permissions(path: pathlib.Path) -> None:
    """mkstemp/mkdtemp create 0600/0700 entries; give the result the umask's usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False, suffix: str = ""):
    """Yields a temporary path next to `path`; on success it replaces `path` in one rename.

    `suffix` ends the temporary file's name, for writers that insist on an extension.

    On any error (or interruption) the temporary path is removed and an existing `path` is left
    untouched. An existing directory is swapped with the new one in a single atomic
    `renameat2(RENAME_EXCHANGE)` on Linux (elsewhere: moved aside, then replaced), so a reader
    or a crash always finds a complete folder at `path`.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    else:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp", suffix=suffix)
        os.close(handle)
        tmp = pathlib.Path(name)
    try:
        yield tmp
        _default_permissions(tmp)
        if directory:
            if path.exists() and _exchange(tmp, path):
                pass  # the old folder now sits at `tmp` and is removed below
            else:
                # no atomic exchange here: move the old folder aside, then the new one in
                old = None
                if path.exists():
                    old = pathlib.Path(
                        tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old")
                    )
                    os.replace(path, old / "previous")
                os.replace(tmp, path)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
