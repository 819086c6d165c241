"""Helpers the per-chapter exercise checks share: workloads with random names and
counts, and readers of a normalized output (see :mod:`._child`) that turn
"not there" into a message for the learner."""

from __future__ import annotations

import random
import re
import shlex
from pathlib import Path
from typing import Any

from .framework import RunFailure
from .model import fail, ok, partial

__all__ = [
    "PRIMES", "comm_name", "find_map", "lines", "map_scalar", "noise_loop", "prime", "sh_sequence",
]

PRIMES = [p for p in range(11, 200) if all(p % d for d in range(2, int(p ** 0.5) + 1))]


def prime(rng: random.Random, lo: int = 11, hi: int = 97) -> int:
    """A random prime in [lo, hi]: counts that cannot come from round numbers by chance."""
    return rng.choice([p for p in PRIMES if lo <= p <= hi])


def comm_name(rng: random.Random, prefix: str = "") -> str:
    """A random process name (letters then digits, at most 15 characters)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return prefix + "".join(rng.choice(letters) for _ in range(4)) + "".join(rng.choice("0123456789") for _ in range(3))


def workload(kind: str, n: int, **kw):
    from .. import workloads

    return workloads.workload(kind, n, **kw)


def sh_sequence(tmp: Path, *argvs: list[str]) -> str:
    """A command that runs several workloads one after the other (for bpftrace's -c).

    bpftrace 0.17 splits ``-c`` on spaces and knows no quotes, so the sequence is
    written to a small shell script in the trial's folder and the command is its path.
    """
    script = Path(tmp) / "run-workload"
    script.write_text("#!/bin/sh\n" + "".join(shlex.join([str(a) for a in argv]) + "\n" for argv in argvs))
    script.chmod(0o700)
    return f"/bin/sh {script}"


def noise_loop(argv: list[str]) -> list[str]:
    """A background process repeating ``argv`` until killed: what a missing filter would count."""
    return ["/bin/sh", "-c", 'while :; do "$@" >/dev/null; done', "noise", *[str(a) for a in argv]]


def lines(out: dict) -> list[str]:
    """The printed lines of a bpftrace run."""
    return [ln.strip() for ln in out.get("lines", []) if ln.strip()]


def find_map(out: dict, name: str) -> Any:
    """The value of map ``name`` (``@calls``); a learner-facing failure if it is missing."""
    maps = out.get("maps", {})
    if name in maps:
        return maps[name]
    seen = ", ".join(sorted(maps)) or "no maps at all"
    raise RunFailure(f"expected a map named {name}, but your program printed {seen}")


def map_scalar(value: Any, key: str | None = None) -> int | None:
    """A number from a map value: a plain number, or the entry ``key`` of a keyed map."""
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, dict):
        if key is not None and key in value:
            return int(value[key])
        if key is None and len(value) == 1:
            return int(next(iter(value.values())))
    return None


def find_ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", text)]


def paths_in(text_lines: list[str], directory: str) -> list[str]:
    """Every token in the lines that is a path inside ``directory``."""
    found = []
    for ln in text_lines:
        for tok in ln.split():
            if tok.startswith(directory.rstrip("/") + "/"):
                found.append(tok)
    return found


def tmpdir(base: Path, name: str) -> str:
    d = base / name
    d.mkdir(parents=True, exist_ok=True)
    return str(d)


def every_opened_path(out, truth):
    """Partial credit per file of ``truth["paths"]`` that the program printed (lessons 02, 03)."""
    seen = set(paths_in(lines(out), truth["dir"]))
    want = truth["paths"]
    got = sum(p in seen for p in want)
    missing = [p for p in want if p not in seen]
    return partial(got, len(want),
                   f"process {truth['comm']!r} opened {len(want)} files in {truth['dir']}; your program "
                   f"printed {got} of them" + (f" (for example it missed {missing[0]})" if missing else ""))


def only_named_paths(out, truth):
    """Fails when the program printed files of another process opening in the same folder."""
    printed = paths_in(lines(out), truth["dir"])
    want = set(truth["paths"])
    if not any(p in want for p in printed):
        return fail(f"your program printed none of the files that {truth['comm']!r} opened")
    others = [p for p in printed if p not in want]
    if others:
        return fail(f"another process was opening files in the same folder, and your program printed "
                    f"{len(others)} of them (for example {others[0]}): keep only comm == str($1)")
    return ok()
