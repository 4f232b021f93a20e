"""Per-container files: written atomically (temp file + rename), removed with their folder."""

from __future__ import annotations

import os
import tempfile

from controller.model import Action, Op


def apply(action: Action) -> None:
    path = action.resource.attrs["path"]
    if action.op is Op.DELETE:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            os.rmdir(os.path.dirname(path))  # only succeeds once the folder is empty
        except OSError:
            pass
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
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
