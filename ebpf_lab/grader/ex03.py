"""Checks for chapter 03, kprobes (exercises/03_kprobes/).

Every exercise comes in two variants in one file: a kprobe variant (``KPROBE``:
kernel functions) and a uprobe variant (``UPROBE``: the same idea on functions
of the C library). The grader grades the kprobe variant where the kernel has
kprobes and kretprobes, else the uprobe variant, and every check's message
says which one it graded ("graded the uprobe variant: this kernel lacks
kprobes"). The learner's file ends with a given ``run(variant, command, ...)``
that calls :func:`run_variant`.

The lab's workloads make their syscalls through libc's ``syscall()`` wrapper
(``syscall(SYS_openat, AT_FDCWD, path, flags)``), so on the uprobe side
``uprobe:libc:syscall`` sees ``arg0`` = the syscall number and ``arg1``... =
the syscall's own arguments, and ``uretprobe:libc:syscall`` sees ``retval`` =
-1 when it failed.
"""

from __future__ import annotations

import shlex

from .common import (comm_name, every_opened_path, find_map, map_scalar, noise_loop, only_named_paths, prime,
                     sh_sequence, tmpdir, workload)
from .framework import Check, ExerciseSpec, RunFailure, Scenario, Trial, _mechanism_missing
from .model import Outcome, fail, ok

__all__ = ["SPECS", "graded_variant", "run_variant"]

CHAPTER = "03_kprobes"
NEEDS = ("uprobe", "uretprobe")  # the variant that works almost everywhere


def graded_variant() -> tuple[str, str]:
    """``(variant, note)``: "kprobe" where kprobes and kretprobes work, else "uprobe"."""
    missing = _mechanism_missing("kprobe") or _mechanism_missing("kretprobe")
    if missing:
        return "uprobe", "graded the uprobe variant: this kernel lacks kprobes"
    return "kprobe", "graded the kprobe variant: this kernel has kprobes"


def _written(program: str | None) -> bool:
    if not program:
        return False
    body = [ln for ln in program.splitlines() if ln.strip() and not ln.strip().startswith("//")]
    return bool(body)


def run_variant(exercise: str, programs: dict, variant: str, command: str, args=(), **kw) -> dict:
    """Run the learner's program of ``variant`` with bpftrace; the normalized output.

    Called by the given ``run()`` at the end of each exercise file of chapter 03.
    Raises NotImplementedError (shown to the learner as "not written yet") when
    that variant's program holds nothing but comments.
    """
    import ebpf_lab  # noqa: PLC0415

    from ._child import normalize_bpftrace  # noqa: PLC0415

    program = programs.get(variant)
    if not _written(program):
        raise NotImplementedError(f"{exercise} is not written yet: write the {variant} program "
                                  f"({variant.upper()} in this file); the grader grades the {variant} "
                                  "variant on this kernel")
    res = ebpf_lab.bpftrace(program, command=command, args=[str(a) for a in args], **kw)
    out = normalize_bpftrace(res)
    out["variant"] = variant
    return out


def _value(out) -> dict:
    if not isinstance(out, dict) or out.get("type") != "value" or not isinstance(out.get("value"), dict):
        raise RunFailure("run() should return what run_variant returns: keep the given run() at the end "
                         "of the file as it was")
    return out["value"]


def _noted(fn):
    """Wrap a check so its message says which variant was graded."""
    def check(out, truth):
        outcome = fn(_value(out), truth)
        note = truth["note"]
        if outcome.fraction >= 1.0:
            return ok(note)
        return Outcome(outcome.fraction, f"{outcome.message} ({note})")
    return check


def _job(variant: str, command: str, *args, noise=None) -> dict:
    job = {"call_args": [variant, command, *args]}
    if noise:
        job["noise"] = noise
    return job

# ---------------------------------------------------------------- 03.1 arguments


def _open_setup(rng, tmp):
    variant, note = graded_variant()
    d = tmpdir(tmp, "files")
    name = comm_name(rng)
    w = workload("open", prime(rng, 11, 41), name=name, dir=d, prefix=comm_name(rng, "f"))
    noise = workload("open", 20, dir=d, prefix=comm_name(rng, "z"), name=comm_name(rng))
    return Scenario(job=_job(variant, shlex.join(w), name, noise=noise_loop(noise)),
                    truth={"dir": d, "paths": w.expected["paths"], "comm": name, "note": note})


SPEC_03_1 = ExerciseSpec(
    id="03.1", title="Arguments: the files a process opens (arg0...argN)", chapter=CHAPTER,
    filename="03.1_open_args.py", function="run",
    trials=[Trial(_open_setup, [
        Check("prints every file the named process opened", 3, _noted(every_opened_path)),
        Check("prints no file of any other process", 1, _noted(only_named_paths), hidden=True),
    ], needs=NEEDS)],
)

# ---------------------------------------------------------------- 03.2 return values


def _failed_setup(rng, tmp):
    variant, note = graded_variant()
    d = tmpdir(tmp, "files")
    name = comm_name(rng)
    n, m = prime(rng, 11, 31), prime(rng, 37, 61)
    good = workload("open", n, name=name, dir=d, prefix=comm_name(rng, "ok"))
    bad = workload("open_missing", m, name=name, dir=d, prefix=comm_name(rng, "no"))
    order = (good, bad) if rng.random() < 0.5 else (bad, good)
    noise = workload("open_missing", 7, dir=d, prefix=comm_name(rng, "z"), name=comm_name(rng))
    return Scenario(job=_job(variant, sh_sequence(tmp, *order), name, noise=noise_loop(noise)),
                    truth={"failed": m, "ok": n, "comm": name, "note": note})


def _failed_exact(out, truth):
    got = map_scalar(find_map(out, "@failed"))
    if got != truth["failed"]:
        return fail(f"process {truth['comm']!r} made {truth['failed']} opens that failed (and {truth['ok']} "
                    f"that worked), but @failed is {got}: count only returns below zero, only for comm $1")
    return ok()


SPEC_03_2 = ExerciseSpec(
    id="03.2", title="Return values: count the failed opens (retval)", chapter=CHAPTER,
    filename="03.2_failed_returns.py", function="run",
    trials=[
        Trial(_failed_setup, [Check("@failed counts exactly the failed opens", 3, _noted(_failed_exact))],
              needs=NEEDS),
        Trial(_failed_setup, [Check("the same with other numbers, with a noisy neighbour", 1,
                                    _noted(_failed_exact), hidden=True)], needs=NEEDS),
    ],
)

# ---------------------------------------------------------------- 03.3 a numeric argument as a map key


def _sizes_setup(rng, tmp):
    variant, note = graded_variant()
    name = comm_name(rng)
    n, size = prime(rng, 11, 97), rng.randint(1100, 60000)
    w = workload("read", n, name=name, size=size)
    noise = workload("read", 30, name=comm_name(rng), size=size)
    return Scenario(job=_job(variant, shlex.join(w), name, noise=noise_loop(noise)),
                    truth={"n": n, "size": size, "comm": name, "note": note})


def _sizes_exact(out, truth):
    value = find_map(out, "@sizes")
    if not isinstance(value, dict):
        return fail(f"@sizes should be keyed by the size asked for (@sizes[SIZE] = count()), but it is {value!r}")
    got = map_scalar(value, str(truth["size"]))
    if got != truth["n"]:
        keys = ", ".join(list(value)[:5])
        return fail(f"process {truth['comm']!r} made {truth['n']} reads of {truth['size']} bytes, but "
                    f"@sizes[{truth['size']}] is {got} (keys seen: {keys})")
    return ok()


SPEC_03_3 = ExerciseSpec(
    id="03.3", title="A numeric argument as a map key: read sizes", chapter=CHAPTER,
    filename="03.3_read_sizes.py", function="run",
    trials=[
        Trial(_sizes_setup, [Check("@sizes[SIZE] holds the exact number of reads", 3, _noted(_sizes_exact))],
              needs=NEEDS),
        Trial(_sizes_setup, [Check("the same for another size, with a noisy neighbour", 1,
                                   _noted(_sizes_exact), hidden=True)], needs=NEEDS),
    ],
)

# ---------------------------------------------------------------- 03.4 entry + return: time inside a function


def _sleep_setup(rng, tmp):
    variant, note = graded_variant()
    name = comm_name(rng)
    ms = rng.randint(120, 260)
    w = workload("sleep", ms, name=name)
    noise = workload("sleep", 7, name=comm_name(rng))
    return Scenario(job=_job(variant, shlex.join(w), name, noise=noise_loop(noise)),
                    truth={"ms": ms, "comm": name, "note": note})


def _sleep_calls(out, truth):
    got = map_scalar(find_map(out, "@calls"))
    if got != 1:
        return fail(f"process {truth['comm']!r} called the sleep function once, but @calls is {got}: "
                    "count the returns of comm $1 only")
    return ok()


def _sleep_longest(out, truth):
    got = map_scalar(find_map(out, "@longest_ns"))
    low = truth["ms"] * 1_000_000
    if got is None or got < low:
        return fail(f"process {truth['comm']!r} slept {truth['ms']} ms = {low} ns in one call, but "
                    f"@longest_ns is {got}: store nsecs at entry (@start[tid]) and take max(nsecs - "
                    "@start[tid]) at return")
    if got > low + 10_000_000_000:
        return fail(f"@longest_ns is {got} ns, more than 10 s longer than the {truth['ms']} ms sleep: "
                    "is @start[tid] set for the same thread?")
    return ok()


SPEC_03_4 = ExerciseSpec(
    id="03.4", title="Entry and return together: time spent in a function", chapter=CHAPTER,
    filename="03.4_time_inside.py", function="run",
    trials=[Trial(_sleep_setup, [
        Check("@longest_ns covers the whole sleep", 2, _noted(_sleep_longest)),
        Check("@calls counts the one call of comm $1", 1, _noted(_sleep_calls), hidden=True),
    ], needs=NEEDS, timeout=30)],
)

# ---------------------------------------------------------------- 03.5 function+offset


def _offset_setup(rng, tmp):
    variant, note = graded_variant()
    name = comm_name(rng)
    if variant == "uprobe":
        d = tmpdir(tmp, "files")
        n, m = prime(rng, 11, 31), prime(rng, 37, 61)
        good = workload("open", n, name=name, dir=d, prefix=comm_name(rng, "ok"))
        bad = workload("open_missing", m, name=name, dir=d, prefix=comm_name(rng, "no"))
        order = (good, bad) if rng.random() < 0.5 else (bad, good)
        truth = {"n": m, "what": f"{m} failed syscall() calls (and {n} that worked)"}
        command = sh_sequence(tmp, *order)
    else:
        n = prime(rng, 11, 97)
        command = shlex.join(workload("getppid", n, name=name))
        truth = {"n": n, "what": f"{n} getppid() calls"}
    truth.update(note=note, comm=name)
    return Scenario(job={"call_args": [variant, command]}, truth=truth)


def _offset_exact(out, truth):
    if out.get("type") != "value":
        raise RunFailure(f"hits_at_offset should return an int, but it returned a {out.get('type')}")
    v = out["value"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        return fail(f"hits_at_offset should return an int, but it returned {v!r} ({truth['note']})")
    if int(v) != truth["n"]:
        return fail(f"the command made {truth['what']}, but hits_at_offset returned {int(v)} "
                    f"({truth['note']})")
    return ok(truth["note"])


SPEC_03_5 = ExerciseSpec(
    id="03.5", title="func+offset with bcc: a probe inside a function", chapter=CHAPTER,
    filename="03.5_offset.py", function="hits_at_offset",
    trials=[
        Trial(_offset_setup, [Check("the count at the offset is exact", 3, _offset_exact)], needs=NEEDS),
        Trial(_offset_setup, [Check("the same with other numbers", 1, _offset_exact, hidden=True)],
              needs=NEEDS),
    ],
)

SPECS = [SPEC_03_1, SPEC_03_2, SPEC_03_3, SPEC_03_4, SPEC_03_5]
