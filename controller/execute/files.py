"""Per-container files: written atomically (temp file + rename), removed with their folder."""

from __future__ import annotations

import contextlib
import os
import tempfile

from controller.model import Action, Op


def apply(action: Action) -> None:
    path = action.resource.attrs["path"]
    if action.op is Op.DELETE:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):  # only succeeds once the folder is empty
            os.rmdir(os.path.dirname(path))
        return
    write_atomically(path, action.resource.attrs["content"])


def write_atomically(path: str, content: str) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".netctl-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
