"""Checks for chapter 02, tracepoints (exercises/02_tracepoints/).

Workloads are fresh per trial (random process names, prime counts, random file
names and ports); a background "noise" process with another name does the same
kind of work, so a missing filter shows.
"""

from __future__ import annotations


import shlex

from .common import (comm_name, every_opened_path, find_ints, lines, noise_loop, only_named_paths, paths_in, prime,
                     sh_sequence, tmpdir, workload)
from .framework import Check, ExerciseSpec, RunFailure, Scenario, Trial
from .model import fail, ok, partial

CHAPTER = "02_tracepoints"

# ---------------------------------------------------------------- 02.1


def _openat_setup(rng, tmp):
    d = tmpdir(tmp, "files")
    name = comm_name(rng)
    w = workload("open", prime(rng, 11, 41), name=name, dir=d, prefix=comm_name(rng, "f"))
    noise = workload("open", 20, dir=d, prefix=comm_name(rng, "z"), name=comm_name(rng))
    return Scenario(job={"command": shlex.join(w), "args": [name], "noise": noise_loop(noise)},
                    truth={"dir": d, "paths": w.expected["paths"], "comm": name})


SPEC_02_1 = ExerciseSpec(
    id="02.1", title="Files opened by a process named in $1", chapter=CHAPTER, filename="02.1_opens_by_name.bt",
    trials=[Trial(_openat_setup, [
        Check("prints every file the named process opened", 3, every_opened_path),
        Check("prints no file of any other process", 1, only_named_paths, hidden=True),
    ])],
)

# ---------------------------------------------------------------- 02.2


def _nr_setup_getppid(rng, tmp):
    n = prime(rng, 11, 97)
    w = workload("getppid", n, name=comm_name(rng))
    return Scenario(job={"call_args": [shlex.join(w), "getppid"]}, truth={"n": n, "syscall": "getppid"})


def _nr_setup_connect(rng, tmp):
    n = prime(rng, 11, 37)
    w = workload("connect", n, name=comm_name(rng), port=rng.randint(20000, 60000))
    return Scenario(job={"call_args": [shlex.join(w), "connect"]}, truth={"n": n, "syscall": "connect"})


def _value(out):
    if out.get("type") != "value":
        raise RunFailure(f"count_syscall should return an int, but it returned a {out.get('type')}")
    return out["value"]


def _nr_exact(out, truth):
    v = _value(out)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        return fail(f"count_syscall should return an int, but it returned {v!r}")
    if int(v) != truth["n"]:
        return fail(f"the command made {truth['n']} {truth['syscall']}() calls, "
                    f"but count_syscall(command, {truth['syscall']!r}) returned {int(v)}")
    return ok()


SPEC_02_2 = ExerciseSpec(
    id="02.2", title="raw_syscalls:sys_enter and the syscall number", chapter=CHAPTER,
    filename="02.2_syscall_by_number.py", function="count_syscall",
    trials=[
        Trial(_nr_setup_getppid, [Check("count_syscall(command, 'getppid') is exact", 3, _nr_exact)]),
        Trial(_nr_setup_connect, [Check("works for another syscall too", 2, _nr_exact, hidden=True)]),
    ],
)

# ---------------------------------------------------------------- 02.3


def _failed_setup(rng, tmp):
    d = tmpdir(tmp, "files")
    name = comm_name(rng)
    good = workload("open", prime(rng, 11, 31), name=name, dir=d, prefix=comm_name(rng, "ok"))
    bad = workload("open_missing", prime(rng, 37, 61), name=name, dir=d, prefix=comm_name(rng, "no"))
    order = (good, bad) if rng.random() < 0.5 else (bad, good)
    return Scenario(job={"command": sh_sequence(tmp, *order), "args": [name]},
                    truth={"dir": d, "missing": bad.expected["paths"], "ok": good.expected["paths"], "comm": name})


def _failed_lines(out, truth):
    result = {}
    for ln in lines(out):
        for p in paths_in([ln], truth["dir"]):
            result.setdefault(p, []).append(ln)
    return result


def _every_failed(out, truth):
    seen = _failed_lines(out, truth)
    want = truth["missing"]
    got = sum(p in seen for p in want)
    return partial(got, len(want),
                   f"{len(want)} opens failed, your program printed {got} of them"
                   + ("" if got else " (print the file name with str() on the line of each failed open)"))


def _errno_shown(out, truth):
    seen = _failed_lines(out, truth)
    mine = [(p, ls[0]) for p, ls in seen.items() if p in set(truth["missing"])]
    if not mine:
        return fail("no failed open was printed, so there is no errno to check")
    wrong = [(p, ln) for p, ln in mine if not (2 in find_ints(ln.replace(p, "")) or "ENOENT" in ln)]
    if wrong:
        p, ln = wrong[0]
        raw = " (it shows -2: that is args->ret itself; the errno is -args->ret)" \
            if -2 in find_ints(ln.replace(p, "")) else ""
        return fail(f"each open failed with errno 2 (ENOENT, the file does not exist), but the line "
                    f"{ln!r} does not show 2{raw}")
    return ok()


def _only_failed(out, truth):
    seen = _failed_lines(out, truth)
    if not any(p in seen for p in truth["missing"]):
        return fail("no failed open was printed")
    okp = [p for p in truth["ok"] if p in seen]
    if okp:
        return fail(f"{len(okp)} of the printed opens succeeded (for example {okp[0]}): "
                    "print only when args->ret is negative")
    return ok()


SPEC_02_3 = ExerciseSpec(
    id="02.3", title="Only the failed opens, with their errno", chapter=CHAPTER,
    filename="02.3_failed_opens.bt",
    trials=[Trial(_failed_setup, [
        Check("prints every failed open", 2, _every_failed),
        Check("shows errno 2 (ENOENT) for them", 1, _errno_shown),
        Check("prints no open that succeeded", 1, _only_failed),
    ])],
)

# ---------------------------------------------------------------- 02.4


def _fork_setup(rng, tmp):
    name, n = comm_name(rng), prime(rng, 11, 41)
    w = workload("fork", n, name=name)
    noise = workload("fork", 5, name=comm_name(rng))
    return Scenario(job={"command": shlex.join(w), "args": [], "noise": noise_loop(noise)},
                    truth={"comm": name, "n": n})


def _fork_rows(out):
    rows = []
    for ln in lines(out):
        parts = ln.split()
        if len(parts) >= 3 and parts[-1].lstrip("-").isdigit() and parts[-2].lstrip("-").isdigit():
            rows.append((" ".join(parts[:-2]), int(parts[-2]), int(parts[-1])))
    return rows


def _fork_count(out, truth):
    rows = [r for r in _fork_rows(out) if r[0] == truth["comm"]]
    if not rows:
        shown = "; ".join(lines(out)[:3]) or "nothing"
        return fail(f"expected lines 'PARENT_NAME PARENT_PID CHILD_PID' for {truth['n']} children of "
                    f"{truth['comm']!r}, but your program printed: {shown}")
    children = {r[2] for r in rows}
    parents = {r[1] for r in rows}
    if len(parents) != 1:
        return fail(f"all children have the same parent, but your lines show {len(parents)} parent pids")
    if len(rows) != truth["n"] or len(children) != truth["n"]:
        return fail(f"the command started {truth['n']} children, your program printed {len(rows)} lines "
                    f"with {len(children)} different child pids")
    return ok()


def _fork_only(out, truth):
    rows = _fork_rows(out)
    if not any(r[0] == truth["comm"] for r in rows):
        return fail("your program printed none of the command's children")
    others = [r for r in rows if r[0] != truth["comm"]]
    if others:
        return fail(f"{len(others)} lines are about other processes (for example parent {others[0][0]!r}): "
                    "keep only children whose parent is the command (args->parent_pid == cpid)")
    return ok()


SPEC_02_4 = ExerciseSpec(
    id="02.4", title="New processes and their parents (sched:sched_process_fork)", chapter=CHAPTER,
    filename="02.4_new_processes.bt",
    trials=[Trial(_fork_setup, [
        Check("one line per child of the command", 3, _fork_count),
        Check("no line about other processes", 1, _fork_only, hidden=True),
    ])],
)

# ---------------------------------------------------------------- 02.5


def _table_setup(rng, tmp):
    n, m = prime(rng, 11, 53), prime(rng, 59, 97)
    name = comm_name(rng)
    w1 = workload("getppid", n, name=name)
    w2 = workload("open_missing", m, name=name, dir=tmpdir(tmp, "none"), prefix=comm_name(rng))
    # one process doing both: run them through one shell that execs nothing, counted by comm
    return Scenario(job={"call_args": [sh_sequence(tmp, w1, w2), name]},
                    truth={"getppid": n, "openat_min": m, "comm": name})


def _frame(out):
    if out.get("type") != "dataframe":
        raise RunFailure(f"syscall_table should return a pandas DataFrame, but it returned {out.get('value')!r}")
    return out


def _table_columns(out, truth):
    df = _frame(out)
    cols = df["columns"]
    need = [c for c in ("syscall", "count") if c not in cols]
    if need:
        return fail(f"the DataFrame needs columns 'syscall' and 'count'; it has {cols}")
    if not df["records"]:
        return fail("the DataFrame is empty")
    counts = [r["count"] for r in df["records"]]
    if counts != sorted(counts, reverse=True):
        return fail("rows should be sorted by count, largest first")
    return ok()


def _table_row(syscall, key, exact):
    def fn(out, truth):
        df = _frame(out)
        if "syscall" not in df["columns"] or "count" not in df["columns"]:
            return fail("without 'syscall' and 'count' columns there is nothing to check")
        rows = [r for r in df["records"] if r.get("syscall") == syscall]
        if not rows:
            return fail(f"the DataFrame has no row for {syscall!r} (names as the kernel spells them)")
        got = int(rows[0]["count"])
        want = truth[key]
        if (exact and got != want) or (not exact and got < want):
            return fail(f"the process made {'' if exact else 'at least '}{want} {syscall}() calls, "
                        f"but the row for {syscall!r} says {got}")
        return ok()
    return fn


SPEC_02_5 = ExerciseSpec(
    id="02.5", title="Per-process syscall counts as a DataFrame", chapter=CHAPTER,
    filename="02.5_syscall_table.py", function="syscall_table",
    trials=[Trial(_table_setup, [
        Check("columns syscall and count, largest count first", 1, _table_columns),
        Check("the getppid row is exact", 2, _table_row("getppid", "getppid", True)),
        Check("the openat row counts every failed open", 1, _table_row("openat", "openat_min", False),
              hidden=True),
    ])],
)

# ---------------------------------------------------------------- 02.6


def _slow_setup(rng, tmp):
    ms = rng.randint(150, 300)
    k = rng.randint(3, 5)
    w = workload("sleep", ms, name=comm_name(rng))
    return Scenario(job={"call_args": [shlex.join(w), k]}, truth={"ms": ms, "k": k})


def _slow_shape(out, truth):
    df = _frame(out)
    need = [c for c in ("syscall", "max_ns") if c not in df["columns"]]
    if need:
        return fail(f"the DataFrame needs columns 'syscall' and 'max_ns'; it has {df['columns']}")
    if len(df["records"]) != truth["k"]:
        return fail(f"slowest_syscalls(command, {truth['k']}) should return {truth['k']} rows, "
                    f"it returned {len(df['records'])}")
    vals = [r["max_ns"] for r in df["records"]]
    if vals != sorted(vals, reverse=True):
        return fail("rows should be sorted by max_ns, slowest first")
    names = [r["syscall"] for r in df["records"]]
    if len(set(names)) != len(names):
        return fail("each syscall should appear once")
    return ok()


def _slow_top(out, truth):
    df = _frame(out)
    if not df["records"] or "syscall" not in df["columns"] or "max_ns" not in df["columns"]:
        return fail("there is no row with columns 'syscall' and 'max_ns' to check")
    top = df["records"][0]
    if top["syscall"] not in ("nanosleep", "clock_nanosleep"):
        return fail(f"the command slept {truth['ms']} ms in one nanosleep call, so that is the slowest; "
                    f"your first row is {top['syscall']!r}")
    if not (top["max_ns"] >= truth["ms"] * 1_000_000):
        return fail(f"the sleep lasted at least {truth['ms']} ms = {truth['ms'] * 1_000_000} ns, "
                    f"but max_ns says {top['max_ns']}: measure from sys_enter to sys_exit, in ns")
    return ok()


SPEC_02_6 = ExerciseSpec(
    id="02.6", title="The slowest syscalls of a command", chapter=CHAPTER, filename="02.6_slowest_syscalls.py",
    function="slowest_syscalls",
    trials=[Trial(_slow_setup, [
        Check("k rows, columns syscall and max_ns, slowest first", 1, _slow_shape),
        Check("the sleep is the slowest, with its real duration", 2, _slow_top),
    ], timeout=30)],
)

SPECS = [SPEC_02_1, SPEC_02_2, SPEC_02_3, SPEC_02_4, SPEC_02_5, SPEC_02_6]


# ---------------------------------------------------------------- 02.7 (kprobe variant of 02.1)

SPEC_02_7 = ExerciseSpec(
    id="02.7", title="Files opened by a process named in $1, with a kprobe", chapter=CHAPTER,
    filename="02.7_opens_kprobe.bt",
    variant="02.1 (the same task with tracepoint:syscalls:sys_enter_openat)",
    trials=[Trial(_openat_setup, [
        Check("prints every file the named process opened", 3, every_opened_path),
        Check("prints no file of any other process", 1, only_named_paths, hidden=True),
    ], needs=("kprobe",))],
)

SPECS.append(SPEC_02_7)

# ---------------------------------------------------------------- 02.8 (trace() into a DataFrame)


def _sizes_setup(rng, tmp):
    n, size = prime(rng, 11, 97), rng.randint(1100, 60000)
    w = workload("read", n, name=comm_name(rng), size=size)
    return Scenario(job={"call_args": [shlex.join(w)]}, truth={"n": n, "size": size})


def _sizes_shape(out, truth):
    df = _frame(out)
    need = [c for c in ("size", "reads") if c not in df["columns"]]
    if need:
        return fail(f"the DataFrame needs columns 'size' and 'reads'; it has {df['columns']}")
    if not df["records"]:
        return fail("the DataFrame is empty")
    reads = [r["reads"] for r in df["records"]]
    if reads != sorted(reads, reverse=True):
        return fail("rows should be sorted by reads, most first (value_counts() does that)")
    sizes = [r["size"] for r in df["records"]]
    if len(set(sizes)) != len(sizes):
        return fail("each size should appear in one row only")
    return ok()


def _sizes_exact(out, truth):
    df = _frame(out)
    if "size" not in df["columns"] or "reads" not in df["columns"]:
        return fail("without 'size' and 'reads' columns there is nothing to check")
    rows = [r for r in df["records"] if r.get("size") == truth["size"]]
    if not rows:
        return fail(f"the command made {truth['n']} reads of {truth['size']} bytes, but no row has "
                    f"size {truth['size']}")
    if rows[0]["reads"] != truth["n"]:
        return fail(f"the command made {truth['n']} reads of {truth['size']} bytes, but the row says "
                    f"{rows[0]['reads']}")
    return ok()


SPEC_02_8 = ExerciseSpec(
    id="02.8", title="Read sizes as a DataFrame with trace()", chapter=CHAPTER,
    filename="02.8_read_sizes_frame.py", function="read_sizes",
    trials=[
        Trial(_sizes_setup, [Check("columns size and reads, most reads first", 1, _sizes_shape),
                             Check("the command's read size has its exact count", 2, _sizes_exact)],
              needs=("tracepoint", "ring buffer")),
        Trial(_sizes_setup, [Check("same for another size and count", 1, _sizes_exact, hidden=True)],
              needs=("tracepoint", "ring buffer")),
    ],
)

SPECS.append(SPEC_02_8)

# ---------------------------------------------------------------- 02.9 (syscall_counts())


def _failing_setup_open(rng, tmp):
    n = prime(rng, 11, 97)
    w = workload("open_missing", n, name=comm_name(rng), dir=tmpdir(tmp, "none"), prefix=comm_name(rng))
    return Scenario(job={"call_args": [shlex.join(w)]}, truth={"syscall": "openat", "n": n, "all_fail": False})


def _failing_setup_connect(rng, tmp):
    n = prime(rng, 11, 37)
    w = workload("connect", n, name=comm_name(rng), port=rng.randint(20000, 60000))
    return Scenario(job={"call_args": [shlex.join(w)]}, truth={"syscall": "connect", "n": n, "all_fail": True})


_FAILING_COLS = ("syscall", "count", "errors", "error_pct")


def _failing_shape(out, truth):
    df = _frame(out)
    need = [c for c in _FAILING_COLS if c not in df["columns"]]
    if need:
        return fail(f"the DataFrame needs the columns {', '.join(_FAILING_COLS)}; it lacks {', '.join(need)}")
    recs = df["records"]
    if not recs:
        return fail("the DataFrame is empty, but the command's syscalls did fail")
    if any(not r["errors"] for r in recs):
        return fail("keep only the syscalls that failed at least once (errors > 0)")
    errs = [r["errors"] for r in recs]
    if errs != sorted(errs, reverse=True):
        return fail("rows should be sorted by errors, most first")
    for r in recs:
        pct = 100.0 * r["errors"] / r["count"] if r["count"] else None
        if pct is None or r["error_pct"] is None or abs(r["error_pct"] - pct) > 0.051:
            return fail(f"error_pct should be 100 * errors / count; for {r['syscall']!r} that is "
                        f"{pct if pct is None else round(pct, 1)}, the row says {r['error_pct']}")
    return ok()


def _failing_row(out, truth):
    df = _frame(out)
    if any(c not in df["columns"] for c in _FAILING_COLS):
        return fail("without the columns " + ", ".join(_FAILING_COLS) + " there is nothing to check")
    rows = [r for r in df["records"] if r["syscall"] == truth["syscall"]]
    if not rows:
        return fail(f"the command made {truth['n']} {truth['syscall']}() calls that failed, but there is "
                    f"no row for {truth['syscall']!r}")
    if rows[0]["errors"] != truth["n"]:
        return fail(f"{truth['n']} {truth['syscall']}() calls failed, but the row says {rows[0]['errors']}")
    if truth["all_fail"] and rows[0]["error_pct"] != 100:
        return fail(f"every {truth['syscall']}() call failed, so error_pct is 100, "
                    f"but the row says {rows[0]['error_pct']}")
    return ok()


SPEC_02_9 = ExerciseSpec(
    id="02.9", title="Which syscalls fail? syscall_counts()", chapter=CHAPTER,
    filename="02.9_failing_syscalls.py", function="failing_syscalls",
    trials=[
        Trial(_failing_setup_open, [
            Check("failing rows only, with error_pct, most errors first", 1,
                  _failing_shape),
            Check("the failed opens are all counted", 2, _failing_row),
        ]),
        Trial(_failing_setup_connect, [Check("same for a syscall that always fails", 1, _failing_row,
                                             hidden=True)]),
    ],
)

SPECS.append(SPEC_02_9)
