"""Atomic writes: build in a temporary sibling, then rename into place."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False):
    """Yields a temporary path next to `path`; on success it replaces `path` in one rename.

    On any error (or interruption) the temporary path is removed and an existing `path` is left
    untouched. For directories, the old one is moved aside first and deleted after the swap.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    else:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp")
        os.close(handle)
        tmp = pathlib.Path(name)
    try:
        yield tmp
        if directory:
            old = None
            if path.exists():
                old = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old"))
                os.replace(path, old / "previous")
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
