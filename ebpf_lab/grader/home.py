"""Where the exercises live, and what their headers say.

The lab's home is the folder that holds ``exercises/`` and ``solutions/``. It is
found, in order: ``$EBPF_LAB_HOME``; the current directory or any parent (so
``ebpf_lab.check`` works from ``notebooks/``); the checkout this package was
imported from.

Every exercise file starts with a header of comment lines (``//`` in ``.bt``
files, ``#`` in ``.py`` files)::

    // 02.3  Only the failed opens
    // Task: ...
    // Graded: ...
    // needs: tracepoint
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import SetupError

__all__ = ["find_home", "read_header"]


def _is_home(p: Path) -> bool:
    return (p / "exercises").is_dir()


def find_home(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``exercises/``; raises :class:`SetupError` if none is found."""
    env = os.environ.get("EBPF_LAB_HOME")
    if env:
        if _is_home(Path(env)):
            return Path(env).resolve()
        raise SetupError(f"EBPF_LAB_HOME={env} has no exercises/ folder",
                         cause="the variable points somewhere other than the lab's checkout",
                         next_step="set EBPF_LAB_HOME to the folder that holds exercises/ and solutions/, or unset it")
    here = Path(start or os.getcwd()).resolve()
    for p in (here, *here.parents):
        if _is_home(p):
            return p
    pkg_home = Path(__file__).resolve().parents[2]
    if _is_home(pkg_home):
        return pkg_home
    raise SetupError("could not find the lab's exercises/ folder",
                     cause=f"neither {here} nor its parents hold exercises/, and EBPF_LAB_HOME is not set",
                     next_step="run from inside the ebpf-lab checkout, or set EBPF_LAB_HOME to it")


_HEADER_RE = re.compile(r"^\s*(?://|#)\s?(.*)$")


def read_header(path: Path) -> dict[str, str]:
    """Parse an exercise header: ``id``, ``title``, ``task``, ``graded``, ``needs``, ``function``."""
    info: dict[str, str] = {}
    key = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("#!"):
            continue
        m = _HEADER_RE.match(line)
        if not m:
            break
        text = m.group(1)
        if "id" not in info:
            idm = re.match(r"(\d\d\.\d+)\s+(.*)", text)
            if idm:
                info["id"], info["title"] = idm.group(1), idm.group(2).strip()
            continue
        km = re.match(r"(task|graded|needs|function|usage):\s*(.*)", text, re.I)
        if km:
            key = km.group(1).lower()
            info[key] = km.group(2).strip()
        elif key and text[:1].isspace() and text.strip():  # an indented continuation line
            info[key] += " " + text.strip()
        else:
            key = None
    return info
