"""Probes at ``function+offset``: the instructions of a function, and hits per instruction.

bpftrace can place a probe inside a function, ``uprobe:/bin/x:func+9`` or
``kprobe:do_sys_openat2+9``, only when it was built with bfd (``bpftrace
--info`` says ``bfd: yes``); Debian's and Ubuntu's bpftrace 0.17 are not, and
say ``compiled without (k|u)probe offset support``. bcc places them itself:
``attach_uprobe(name=..., sym=..., sym_off=N)`` and ``attach_kprobe(event=...,
event_off=N)``. An offset must be the start of an instruction: in the middle of
one, the kernel refuses the uprobe (or, for a kprobe, the CPU would run half an
instruction), which is why :func:`instructions` comes first::

    >>> from ebpf_lab import uprobes
    >>> uprobes.instructions("libc", "syscall")                     # doctest: +SKIP
       offset   address            instruction
    0       0  0x101810       mov    %rdi,%rax
    ...
    >>> uprobes.function_hits("uprobe:libc:syscall", [0, 34], command=w)  # doctest: +SKIP

Introduced in lesson 03 (``notebooks/03_kprobes.ipynb``: libc's ``syscall()``
has an instruction that runs only when the syscall failed), used by the
exercise 03.5 and its checks.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import time
from typing import Sequence

from .errors import BackendMissingError, NotSupportedError, ProbeError, UsageError

__all__ = ["function_hits", "instructions", "libc_path", "probe_offset"]

_OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(.*)$")


def libc_path() -> str:
    """The absolute path of the C library (what ``uprobe:libc:malloc`` resolves to)."""
    from .elfsyms import resolve_library  # noqa: PLC0415

    return resolve_library("libc")


def _resolve(binary: str) -> str:
    from .elfsyms import resolve_binary  # noqa: PLC0415

    return resolve_binary(binary)


def instructions(binary: str, function: str, *, limit: int = 64):
    """The machine instructions of ``function`` in ``binary``, one row each.

    Columns: ``offset`` (bytes from the function's start: what ``func+offset``
    means), ``address`` (the symbol's address in the file) and ``instruction``
    (AT&T syntax, as ``gdb x/i`` and ``objdump`` print it). ``binary`` is a path,
    a command on PATH or a library's short name (``libc``). Uses ``objdump``
    from binutils.
    """
    import pandas as pd  # noqa: PLC0415

    from .elfsyms import symbol_address  # noqa: PLC0415

    path = _resolve(binary)
    start_off = symbol_address(path, function)  # raises UnknownProbeError with suggestions
    objdump = shutil.which("objdump")
    if objdump is None:
        raise BackendMissingError("objdump is not installed, so instructions cannot be listed",
                                  cause="binutils is missing", next_step="`apt-get install binutils`")
    name = function.split("@", 1)[0]
    proc = subprocess.run([objdump, "-d", "-w", f"--disassemble={name}", path],
                          capture_output=True, text=True, timeout=60)
    rows = []
    for line in proc.stdout.splitlines():
        m = _OBJDUMP_LINE.match(line)
        if not m:
            continue
        addr = int(m.group(1), 16)
        rows.append({"address": addr, "instruction": re.sub(r"\s+#.*$", "", m.group(2)).strip()})
        if len(rows) >= limit:
            break
    if not rows:
        raise ProbeError(f"objdump printed no instructions for {function} in {path}",
                         stderr=proc.stderr, next_step=f"try `objdump -d --disassemble={name} {path}` yourself")
    base = rows[0]["address"]
    df = pd.DataFrame([{"offset": r["address"] - base, "address": hex(r["address"]),
                        "instruction": r["instruction"]} for r in rows], columns=["offset", "address", "instruction"])
    df.attrs.update(binary=path, function=function, file_offset=start_off)
    return df


def probe_offset(binary: str, function: str, offset: int = 0) -> int:
    """The file offset of ``function+offset`` in ``binary``: what the kernel's uprobe
    interface takes (``PATH:0xOFFSET``). Raises UsageError unless ``offset`` is the
    start of one of the function's instructions."""
    from .elfsyms import symbol_address  # noqa: PLC0415

    path = _resolve(binary)
    base = symbol_address(path, function)
    if offset:
        starts = list(instructions(path, function, limit=4096)["offset"])
        if offset not in starts:
            raise UsageError(f"{function}+{offset} is not the start of an instruction in {path}",
                             cause="a probe in the middle of an instruction is refused by the kernel",
                             next_step=f"use one of the offsets instructions({binary!r}, {function!r}) lists: "
                                       + ", ".join(map(str, starts[:12])))
    return base + offset


# the command's pid and every process it forks (a shell script's workloads, say)
_FOLLOW = """
BPF_HASH(pids, u32, u8, 4096);
TRACEPOINT_PROBE(sched, sched_process_fork) {
    u32 parent = args->parent_pid;
    if (pids.lookup(&parent)) {
        u32 child = args->child_pid;
        u8 one = 1;
        pids.update(&child, &one);
    }
    return 0;
}
"""


def _parse_target(target: str) -> tuple[str, str, str]:
    parts = target.split(":")
    if parts[0] == "uprobe" and len(parts) == 3:
        return "uprobe", parts[1], parts[2]
    if parts[0] == "kprobe" and len(parts) == 2:
        return "kprobe", "", parts[1]
    raise UsageError(f"bad probe {target!r}",
                     next_step="write 'uprobe:BINARY:FUNCTION' (e.g. 'uprobe:libc:syscall') or 'kprobe:FUNCTION'")


def function_hits(target: str, offsets: Sequence[int], *, command, timeout: float = 60):
    """How many times the process started by ``command`` ran each ``function+offset``.

    ``target``: ``"uprobe:libc:syscall"`` or ``"kprobe:do_sys_openat2"``;
    ``offsets``: byte offsets from the function's start (instruction starts;
    see :func:`instructions`). The command is held before ``exec`` until every
    probe is attached, and the probes count only its process and the processes
    it starts (followed through ``sched:sched_process_fork``), so the numbers
    are exact. Returns a DataFrame with ``offset``, ``instruction`` (for uprobes)
    and ``hits``; ``df.attrs["output"]`` is the command's stdout.

    bcc does the offsets (``attach_uprobe(sym_off=...)`` /
    ``attach_kprobe(event_off=...)``), because Debian's bpftrace cannot.
    A kernel without kprobes raises NotSupportedError naming the uprobe way.
    """
    import pandas as pd  # noqa: PLC0415

    from ._bcc import capture_stderr, compile_quietly, load_bcc, require_root  # noqa: PLC0415
    from .session import ProbeRun  # noqa: PLC0415

    kind, binary, function = _parse_target(target)
    offsets = [int(o) for o in offsets]
    if not offsets or any(o < 0 for o in offsets):
        raise UsageError("give at least one offset, each >= 0", next_step="offsets=[0] is the function's entry")
    listing = None
    if kind == "uprobe":
        binary = _resolve(binary)
        listing = instructions(binary, function, limit=4096)
        starts = set(listing["offset"])
        bad = [o for o in offsets if o not in starts]
        if bad:
            raise UsageError(f"{function}+{bad[0]} is not the start of an instruction in {binary}",
                             cause="a uprobe in the middle of an instruction is refused by the kernel",
                             next_step="pick offsets from uprobes.instructions("
                                       f"{binary!r}, {function!r})['offset']")
    require_root("attaching probes")
    bcc = load_bcc()
    with ProbeRun() as run:
        import subprocess as sp  # noqa: PLC0415

        held = run.hold(command, stdout=sp.PIPE, stderr=sp.DEVNULL)
        fns = "\n".join(
            f"int hit_{i}(struct pt_regs *ctx) {{\n"
            f"    u32 pid = bpf_get_current_pid_tgid() >> 32;\n"
            f"    if (!pids.lookup(&pid)) return 0;\n"
            f"    int k = {i}; u64 *v = hits.lookup(&k); if (v) __sync_fetch_and_add(v, 1);\n"
            f"    return 0;\n}}" for i in range(len(offsets)))
        text = _FOLLOW + f"BPF_ARRAY(hits, u64, {len(offsets)});\n{fns}\n"
        b = compile_quietly(bcc, text)
        run.on_close(b.cleanup)
        b["pids"][ctypes.c_uint(held.pid)] = ctypes.c_ubyte(1)
        for i, off in enumerate(offsets):
            try:
                with capture_stderr():  # bcc prints its own attach errors on fd 2
                    if kind == "uprobe":
                        b.attach_uprobe(name=binary, sym=function, sym_off=off, fn_name=f"hit_{i}", pid=-1)
                    else:
                        b.attach_kprobe(event=function, event_off=off, fn_name=f"hit_{i}")
            except Exception as exc:  # bcc raises bare Exception
                if kind == "kprobe":
                    from .catalog import kprobes_supported  # noqa: PLC0415

                    if not kprobes_supported():
                        raise NotSupportedError(
                            f"cannot attach kprobe:{function}+{off}: this kernel has no kprobes",
                            feature="kprobes", alternative="uprobes at an offset (function_hits('uprobe:libc:syscall', ...))",
                        ) from exc
                raise ProbeError(f"could not attach {target}+{off}: {exc}",
                                 next_step="check the function name and that the offset starts an instruction") from exc
        started = time.monotonic()
        held.release()
        try:
            out, _ = held.proc.communicate(timeout=timeout)
        except sp.TimeoutExpired:
            raise ProbeError(f"the command did not end within {timeout:g} s",
                             next_step="give a command that ends, or a larger timeout=") from None
        counts = {int(k.value): int(v.value) for k, v in b["hits"].items()}
        elapsed = time.monotonic() - started
    rows = []
    for i, off in enumerate(offsets):
        row = {"offset": off, "hits": counts.get(i, 0)}
        if listing is not None:
            row["instruction"] = listing.set_index("offset").loc[off, "instruction"]
        rows.append(row)
    cols = ["offset", "instruction", "hits"] if listing is not None else ["offset", "hits"]
    df = pd.DataFrame(rows, columns=cols)
    df.attrs.update(target=target, pid=held.pid, output=(out or b"").decode(errors="replace"),
                    elapsed_s=round(elapsed, 3))
    return df
