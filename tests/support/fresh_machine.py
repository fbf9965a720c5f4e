"""A machine without a program: a PATH on which ``name`` cannot be found.

Every PATH directory that holds ``name`` is replaced by a directory of symbolic links to
everything else it holds; the others stay as they are. Used to run the dev stack (and
part of the suite) as on a fresh machine with no ``redis-server`` installed.
"""

from __future__ import annotations

import os
from pathlib import Path


def path_without(names: tuple[str, ...], workdir: Path, path: str | None = None) -> str:
    """``path`` (default ``$PATH``) with none of ``names`` found on it."""
    out = []
    for index, entry in enumerate((path or os.environ.get("PATH", "")).split(os.pathsep)):
        folder = Path(entry)
        if not any((folder / name).exists() for name in names):
            out.append(entry)
            continue
        shadow = workdir / f"path{index}"
        shadow.mkdir(parents=True, exist_ok=True)
        for item in folder.iterdir():
            if item.name not in names and not (shadow / item.name).exists():
                (shadow / item.name).symlink_to(item)
        out.append(str(shadow))
    return os.pathsep.join(out)
