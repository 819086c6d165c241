"""Hints, one at a time.

Hints live beside each exercise in ``<file stem>.hints.md``, separated by lines
holding only ``---``. :func:`next_hint` returns the next hint the learner has not
seen yet and remembers progress in ``~/.cache/ebpf-lab/hints.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._cache import cache_dir
from ..errors import UsageError

__all__ = ["hints_for", "next_hint", "progress_file", "reset_hints"]


def progress_file() -> Path:
    return cache_dir() / "hints.json"


def hints_for(exercise_path: Path) -> list[str]:
    """All hints of the exercise at ``exercise_path`` (an empty list if it has none)."""
    p = Path(exercise_path)
    f = p.with_name(p.stem + ".hints.md")
    if not f.exists():
        return []
    parts, cur = [], []
    for line in f.read_text().splitlines():
        if line.strip() == "---":
            parts.append("\n".join(cur).strip())
            cur = []
        else:
            cur.append(line)
    parts.append("\n".join(cur).strip())
    return [h for h in parts if h]


def _load() -> dict:
    try:
        return json.loads(progress_file().read_text())
    except (OSError, ValueError):
        return {}


def _save(data: dict) -> None:
    f = progress_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, f)


def next_hint(exercise_id: str, exercise_path: Path) -> tuple[int, int, str]:
    """``(number, total, text)`` of the next unseen hint; after the last, the last again."""
    hints = hints_for(exercise_path)
    if not hints:
        raise UsageError(f"exercise {exercise_id} has no hints",
                         next_step="read the exercise header again, or look at the chapter's notebook")
    data = _load()
    seen = int(data.get(exercise_id, 0))
    idx = min(seen, len(hints) - 1)
    data[exercise_id] = idx + 1
    _save(data)
    return idx + 1, len(hints), hints[idx]


def reset_hints(exercise_id: str | None = None) -> None:
    """Forget hint progress for one exercise, or for all when ``exercise_id`` is None."""
    data = _load()
    if exercise_id is None:
        data = {}
    else:
        data.pop(exercise_id, None)
    _save(data)
