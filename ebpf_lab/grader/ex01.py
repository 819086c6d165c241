"""Checks for chapter 01, bpftrace basics (exercises/01_bpftrace_basics/).

Every trial makes a fresh workload (random process name, prime count, random file
names); the learner's program gets only the command to run (``-c``) and, where
the task says so, the process name as ``$1``.
"""

from __future__ import annotations

import shlex
from collections import Counter

from .common import (comm_name, find_map, lines, map_scalar, noise_loop, paths_in, prime, sh_sequence,
                     tmpdir, workload)
from .framework import Check, ExerciseSpec, Scenario, Trial
from .model import fail, ok, partial

CHAPTER = "01_bpftrace_basics"

# ---------------------------------------------------------------- 01.1


def _getppid_setup(rng, tmp):
    name, n = comm_name(rng), prime(rng)
    w = workload("getppid", n, name=name)
    return Scenario(job={"command": shlex.join(w), "args": []}, truth={"comm": name, "n": n})


def _calls_keyed(out, truth):
    calls = find_map(out, "@calls")
    if not isinstance(calls, dict):
        return fail(f"@calls should be keyed by process name (@calls[comm]), but it holds a single value: {calls}")
    if truth["comm"] not in calls:
        return fail(f"@calls has no entry for the workload's process {truth['comm']!r}; "
                    f"its keys are: {', '.join(sorted(calls)[:8]) or 'none'}")
    return ok()


def _calls_exact(out, truth):
    calls = find_map(out, "@calls")
    got = map_scalar(calls, truth["comm"]) if isinstance(calls, dict) else None
    if got is None:
        return fail(f"expected @calls[{truth['comm']!r}] = {truth['n']}, but there is no such entry")
    if got != truth["n"]:
        return fail(f"process {truth['comm']!r} called getppid() {truth['n']} times, "
                    f"but @calls[{truth['comm']!r}] is {got}")
    return ok()


SPEC_01_1 = ExerciseSpec(
    id="01.1", title="Count getppid() calls per process", chapter=CHAPTER, filename="01.1_count_per_process.bt",
    trials=[
        Trial(_getppid_setup, [Check("@calls is keyed by process name", 1, _calls_keyed),
                               Check("@calls[name] is the number of getppid() calls", 2, _calls_exact)]),
        Trial(_getppid_setup, [Check("same count for another process name and count", 1, _calls_exact,
                                     hidden=True)]),
    ],
)

# ---------------------------------------------------------------- 01.2


def _files_setup(rng, tmp):
    d = tmpdir(tmp, "files")
    n = prime(rng, 11, 41)
    w = workload("open", n, dir=d, prefix=comm_name(rng, "f"))
    noise = workload("open", 20, dir=d, prefix=comm_name(rng, "z"), name=comm_name(rng))
    return Scenario(job={"command": shlex.join(w), "args": [], "noise": noise_loop(noise)},
                    truth={"dir": d, "paths": w.expected["paths"], "noise_prefix": noise.expected["prefix"]})


def _all_paths(out, truth):
    seen = set(paths_in(lines(out), truth["dir"]))
    want = truth["paths"]
    got = sum(p in seen for p in want)
    missing = [p for p in want if p not in seen]
    return partial(got, len(want),
                   f"the command opened {len(want)} files in {truth['dir']}, your program printed {got} of them"
                   + (f"; for example it missed {missing[0]}" if missing else ""))


def _each_once(out, truth):
    counts = Counter(paths_in(lines(out), truth["dir"]))
    mine = {p: c for p, c in counts.items() if p in set(truth["paths"])}
    if not mine:
        return fail("your program printed none of the command's files")
    twice = [p for p, c in mine.items() if c > 1]
    if twice:
        return fail(f"each file was opened once, but {twice[0]} was printed {mine[twice[0]]} times")
    return ok()


def _only_command(out, truth):
    printed = paths_in(lines(out), truth["dir"])
    want = set(truth["paths"])
    if not any(p in want for p in printed):
        return fail("your program printed none of the command's files")
    others = [p for p in printed if p not in want]
    if others:
        return fail(f"another process was opening files at the same time, and your program printed "
                    f"{len(others)} of its files too (for example {others[0]}): filter on the command's pid")
    return ok()


SPEC_01_2 = ExerciseSpec(
    id="01.2", title="Files opened by the command (-c, cpid)", chapter=CHAPTER,
    filename="01.2_files_of_command.bt",
    trials=[Trial(_files_setup, [
        Check("prints every file the command opened", 3, _all_paths),
        Check("prints each file once", 1, _each_once),
        Check("prints only the command's files", 1, _only_command, hidden=True),
    ])],
)

# ---------------------------------------------------------------- 01.3


def _positional_setup(rng, tmp):
    name, other = comm_name(rng), comm_name(rng)
    n, m = prime(rng, 11, 53), prime(rng, 59, 97)
    first, second = workload("getppid", n, name=name), workload("getppid", m, name=other)
    order = (first, second) if rng.random() < 0.5 else (second, first)
    return Scenario(job={"command": sh_sequence(tmp, *order), "args": [name]},
                    truth={"comm": name, "n": n, "other": m})


def _positional_exact(out, truth):
    calls = find_map(out, "@calls")
    got = map_scalar(calls, truth["comm"])
    if got is None:
        return fail(f"expected @calls to be one number (no key), but it holds {calls}")
    if got == truth["n"]:
        return ok()
    if got == truth["n"] + truth["other"]:
        return fail(f"@calls is {got}: that counts both processes the command started. "
                    f"Count only the process named in $1 ({truth['comm']!r}), which made {truth['n']} calls")
    return fail(f"the process named in $1 ({truth['comm']!r}) called getppid() {truth['n']} times, "
                f"but @calls is {got}")


SPEC_01_3 = ExerciseSpec(
    id="01.3", title="A filter with a positional parameter ($1)", chapter=CHAPTER,
    filename="01.3_filter_by_name.bt",
    trials=[
        Trial(_positional_setup, [Check("@calls counts only the process named in $1", 3, _positional_exact)]),
        Trial(_positional_setup, [Check("same, with other names and counts", 1, _positional_exact, hidden=True)]),
    ],
)

# ---------------------------------------------------------------- 01.4


def _hist_setup(rng, tmp):
    name = comm_name(rng)
    n1, n2 = prime(rng, 11, 47), prime(rng, 53, 97)
    s1, s2 = rng.randint(2048, 4095), rng.randint(16384, 32767)
    w1 = workload("read", n1, name=name, size=s1)
    w2 = workload("read", n2, name=name, size=s2)
    return Scenario(job={"command": sh_sequence(tmp, w1, w2), "args": [name]},
                    truth={"comm": name, "reads": [(s1, n1), (s2, n2)]})


def _hist_exists(out, truth):
    hists = out.get("hists", {})
    if "@bytes" not in hists:
        return fail("expected a histogram named @bytes (@bytes = hist(...)), but your program printed "
                    + (", ".join(sorted(hists)) if hists else "no histogram"))
    if not hists["@bytes"]:
        return fail("@bytes is an empty histogram: no read of the process named in $1 reached it")
    return ok()


def _bucket_check(i):
    def fn(out, truth):
        size, n = truth["reads"][i]
        hist = out.get("hists", {}).get("@bytes")
        if not hist:
            return fail("there is no @bytes histogram to look in")
        for lo, hi, count in hist:
            if lo is not None and hi is not None and lo <= size <= hi:
                if count == n:
                    return ok()
                return fail(f"the workload made {n} reads of {size} bytes, but the bucket "
                            f"[{lo}, {hi}] of @bytes holds {count}")
        return fail(f"the workload made {n} reads of {size} bytes, but @bytes has no bucket for {size}")
    return fn


SPEC_01_4 = ExerciseSpec(
    id="01.4", title="A histogram of read sizes", chapter=CHAPTER, filename="01.4_read_sizes.bt",
    trials=[Trial(_hist_setup, [
        Check("a histogram @bytes of read sizes", 1, _hist_exists),
        Check("the smaller reads land in the right bucket with the right count", 2, _bucket_check(0)),
        Check("the larger reads land in the right bucket with the right count", 2, _bucket_check(1)),
    ])],
)

# ---------------------------------------------------------------- 01.5


def _stats_setup(rng, tmp):
    name = comm_name(rng)
    n1, n2 = prime(rng, 11, 47), prime(rng, 53, 97)
    s1, s2 = rng.randint(1100, 3000), rng.randint(4000, 9000)
    w1 = workload("read", n1, name=name, size=s1)
    w2 = workload("read", n2, name=name, size=s2)
    total = n1 * s1 + n2 * s2
    truth = {"@count": n1 + n2, "@sum": total, "@avg": total // (n1 + n2), "@min": s1, "@max": s2}
    return Scenario(job={"command": sh_sequence(tmp, w1, w2), "args": [name]}, truth=truth)


def _stat(name, what):
    def fn(out, truth):
        value = map_scalar(find_map(out, name))
        if value is None:
            return fail(f"{name} should be a single number, but it holds {out['maps'][name]}")
        if value != truth[name]:
            return fail(f"the {what} of the reads over 1024 bytes was {truth[name]}, but {name} is {value}")
        return ok()
    return fn


SPEC_01_5 = ExerciseSpec(
    id="01.5", title="count, sum, avg, min, max", chapter=CHAPTER, filename="01.5_read_stats.bt",
    trials=[Trial(_stats_setup, [
        Check("@count: how many reads", 1, _stat("@count", "number")),
        Check("@sum: total bytes asked for", 1, _stat("@sum", "sum of sizes")),
        Check("@avg: average size", 1, _stat("@avg", "average size (rounded down)")),
        Check("@min: smallest size", 1, _stat("@min", "smallest size")),
        Check("@max: largest size", 1, _stat("@max", "largest size")),
    ])],
)

# ---------------------------------------------------------------- 01.6


def _end_setup(rng, tmp):
    n = prime(rng, 11, 97)
    w = workload("getppid", n, name=comm_name(rng))
    noise = workload("getppid", 50, name=comm_name(rng))
    return Scenario(job={"command": shlex.join(w), "args": [], "noise": noise_loop(noise)}, truth={"n": n})


def _end_line(out, truth):
    import re

    found = [ln for ln in lines(out) if re.match(r"^getppid calls:\s*-?\d+$", ln)]
    if not found:
        shown = "; ".join(lines(out)[-3:]) or "nothing"
        return fail(f"expected a line 'getppid calls: {truth['n']}' at the end, but your program printed: {shown}")
    got = int(found[-1].split(":")[1])
    if got != truth["n"]:
        extra = " (other processes were calling getppid() too: count only the command's pid)" \
            if got > truth["n"] else ""
        return fail(f"the command called getppid() {truth['n']} times, but your program printed "
                    f"'getppid calls: {got}'{extra}")
    return ok()


def _no_maps_left(out, truth):
    import re

    if not any(re.match(r"^getppid calls:", ln) for ln in lines(out)):
        return fail("your program printed no 'getppid calls: N' line")
    left = {k: v for k, v in out.get("maps", {}).items() if v not in ({}, [], None, 0)}
    left.update({k: v for k, v in out.get("hists", {}).items() if v})
    if left:
        return fail(f"bpftrace printed the map {sorted(left)[0]} when it exited: clear() it in END "
                    "after printing, so only your line is shown")
    return ok()


SPEC_01_6 = ExerciseSpec(
    id="01.6", title="A summary line in END", chapter=CHAPTER, filename="01.6_end_summary.bt",
    trials=[Trial(_end_setup, [
        Check("prints 'getppid calls: N' for the command only", 3, _end_line),
        Check("prints no map at exit", 1, _no_maps_left),
    ])],
)

SPECS = [SPEC_01_1, SPEC_01_2, SPEC_01_3, SPEC_01_4, SPEC_01_5, SPEC_01_6]

# ---------------------------------------------------------------- 01.7


def _ticks_setup(rng, tmp):
    k = rng.randint(3, 7)
    w = workload("sleep", 4000, name=comm_name(rng))  # runs far longer than k ticks of 100 ms
    return Scenario(job={"command": shlex.join(w), "args": [str(k)]}, truth={"k": k})


def _tick_lines(out):
    import re

    return [int(m.group(1)) for ln in lines(out) if (m := re.match(r"^tick\s+(\d+)$", ln))]


def _ticks_exact(out, truth):
    ticks = _tick_lines(out)
    want = list(range(1, truth["k"] + 1))
    if ticks == want:
        return ok()
    if not ticks:
        shown = "; ".join(lines(out)[:3]) or "nothing"
        return fail(f"expected the lines 'tick 1' ... 'tick {truth['k']}', but your program printed: {shown}")
    if len(ticks) > truth["k"]:
        return fail(f"$1 was {truth['k']}, but your program printed {len(ticks)} ticks: call exit() "
                    f"in the interval probe when the count reaches $1")
    return fail(f"expected 'tick 1' ... 'tick {truth['k']}' ($1 = {truth['k']}), "
                f"but the tick numbers were {ticks[:10]}")


SPEC_01_7 = ExerciseSpec(
    id="01.7", title="interval and exit()", chapter=CHAPTER, filename="01.7_ticks.bt",
    trials=[Trial(_ticks_setup, [
        Check("prints 'tick 1' ... 'tick $1', then stops itself", 3, _ticks_exact),
        Check("prints no map at exit", 1, lambda out, truth: _no_maps_left_after(out, _tick_lines(out))),
    ], needs=("perf event",))],
)


def _no_maps_left_after(out, seen):
    if not seen:
        return fail("your program printed no 'tick N' line")
    left = {k: v for k, v in out.get("maps", {}).items() if v not in ({}, [], None, 0)}
    if left:
        return fail(f"bpftrace printed the map {sorted(left)[0]} when it exited: clear() it in END")
    return ok()


SPECS.append(SPEC_01_7)
