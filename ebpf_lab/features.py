"""Does this kernel support X? Found out by loading and attaching something tiny.

One function per mechanism. Each one really loads a small BPF program, attaches
it, makes it fire against this process (or a child it starts itself), reads the
result back and detaches -- it never compares kernel version numbers. Like
cilium/ebpf's ``features`` package, only two answers are conclusive:

* ``ok``: it loaded, attached and produced events here;
* ``missing``: the kernel said "not supported" in a way that cannot mean anything
  else (the kprobe interfaces do not exist, the verifier refuses the helper, the
  program type is refused although we hold every capability and a tracepoint
  program loads fine in the same process).

Anything else is ``unknown``, with the error text, so that a learner (or a test)
never mistakes a flaky probe for a missing feature.

All the C snippets are compiled into ONE bcc module (one clang run, ~0.5 s), with
bcc's automatic attach switched off, so each mechanism still loads and attaches
its own program and fails on its own. Only USDT needs a module of its own (bcc
generates its argument readers per target process). Everything a probe creates
-- programs, perf events, uprobes, children, the cgroup -- belongs to a
:class:`~ebpf_lab.session.ProbeRun` and is gone when :func:`probe` returns.

This is floor 4 of the architecture: ``doctor`` calls :func:`probe`; learners
normally call ``ebpf_lab.doctor()`` rather than this module.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from ._bcc import capture_stderr
from .privileges import effective_capabilities
from .session import ProbeRun

__all__ = ["MECHANISMS", "Finding", "probe"]

#: The mechanism check names, in the order ``doctor`` shows them. Tests and other
#: modules use these exact strings.
MECHANISMS = (
    "tracepoint",
    "raw tracepoint",
    "kprobe",
    "kretprobe",
    "fentry/fexit",
    "uprobe",
    "uretprobe",
    "USDT",
    "perf event",
    "ring buffer",
    "LSM",
    "cgroup socket hooks",
    "bpf_send_signal",
    "override",
)

N_CALLS = 23  # how many times a probe is triggered (a prime, as in the tests)
SIGNAL_SENT = signal.SIGUSR1  # the harmless signal bpf_send_signal sends to our own child
TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"
ERROR_INJECTION_LIST = "/sys/kernel/debug/error_injection/list"
KPROBE_TARGET = b"vfs_read"  # in every kernel; the probe program does nothing


@dataclass(frozen=True)
class Finding:
    """The answer for one mechanism: ``status`` is ``ok``, ``missing`` or ``unknown``."""

    status: str
    detail: str
    next_step: str = ""


# What to use instead when a mechanism is missing: the nearest thing that works.
ALTERNATIVES = {
    "tracepoint": "mount tracefs (`mount -t tracefs nodev /sys/kernel/tracing`); tracepoints need "
                  "CONFIG_BPF_EVENTS and CONFIG_FTRACE_SYSCALLS, which almost every distribution kernel has",
    "raw tracepoint": "use tracepoints (tracepoint:raw_syscalls:sys_enter carries the same data)",
    "kprobe": "use tracepoints (tracepoint:syscalls:sys_enter_*, list them with "
              "ebpf_lab.list_probes('tracepoint:*')) or raw tracepoints for the kernel side, "
              "and uprobes for functions in programs and libraries",
    "kretprobe": "use tracepoint:syscalls:sys_exit_* for syscall return values, "
                 "and uretprobes for functions in programs and libraries",
    "fentry/fexit": "use tracepoints or raw tracepoints (rawtracepoint:sys_enter); to see a kernel "
                    "function's signature without fentry, read it from BTF with the lab's BTF reader "
                    "(ebpf_lab.btf)",
    "uprobe": "trace the syscalls the program makes with tracepoints instead",
    "uretprobe": "trace the syscall exits (tracepoint:syscalls:sys_exit_*) instead",
    "USDT": "put a uprobe on the function that contains the probe point instead",
    "perf event": "count with tracepoints instead of sampling; check /proc/sys/kernel/perf_event_paranoid",
    "ring buffer": "use a perf buffer (bcc BPF_PERF_OUTPUT) instead: slower, but it reports lost events",
    "LSM": "for network policy use cgroup socket hooks (a connect4 program that returns 0 blocks "
           "connect()); to stop a process use bpf_send_signal from a tracepoint",
    "cgroup socket hooks": "check that cgroup2 is mounted (grep cgroup2 /proc/mounts); "
                           "to watch connects without blocking them use tracepoint:syscalls:sys_enter_connect",
    "bpf_send_signal": "let the BPF program report the event and kill the process from user space",
    "override": "to make connect() fail, use a cgroup connect4 hook that returns 0; to stop a "
                "process, use bpf_send_signal; override itself needs a kernel with KPROBES, "
                "FUNCTION_ERROR_INJECTION and BPF_KPROBE_OVERRIDE",
}


# --------------------------------------------------------------------------- helpers

def _relevant(stderr: str, lines: int = 3) -> str:
    """The last few meaningful lines bcc printed (no clang warnings, no blank lines)."""
    keep = []
    for ln in stderr.splitlines():
        s = ln.strip()
        if not s or "warning:" in s or s.startswith(("^", "#", "In file included", "~")) or "note:" in s:
            continue
        if s[0].isdigit() and ":" in s[:6]:  # verifier instruction dump
            continue
        keep.append(s)
    return " / ".join(keep[-lines:])


def _tid() -> int:
    return threading.get_native_id()


def _counter(fn: str, ctx: str = "void *ctx", match: str | None = "tid", ret: str = "0") -> str:
    """C source of a program that counts its hits when the current thread/process matches."""
    if match is None:
        cond = "1"
    else:
        shift = "" if match == "tid" else " >> 32"
        cond = f"want && *want == (u32)(bpf_get_current_pid_tgid(){shift})"
    return f"""
BPF_ARRAY({fn}_want, u32, 1);
BPF_ARRAY({fn}_hits, u64, 1);
int {fn}({ctx}) {{
    u32 k = 0;
    u32 *want = {fn}_want.lookup(&k);
    if ({cond}) {{
        u64 *v = {fn}_hits.lookup(&k);
        if (v) __sync_fetch_and_add(v, 1);
    }}
    return {ret};
}}
"""


def _set(bpf, table: str, value: int) -> None:
    t = bpf[table.encode()]
    t[t.Key(0)] = t.Leaf(value)


def _get(bpf, table: str) -> int:
    t = bpf[table.encode()]
    return int(t[t.Key(0)].value)


def _syscall_getppid_n(n: int = N_CALLS) -> None:
    for _ in range(n):
        os.getppid()


def _errno_of(exc: Exception) -> int | None:
    """The errno behind a bcc exception (bcc keeps it only in its message)."""
    text = str(exc)
    if "Need super-user privileges" in text:
        return errno.EPERM  # bcc's misleading wording of every EPERM
    for code, name in ((errno.EINVAL, "Invalid argument"), (errno.ENOENT, "No such file or directory"),
                       (errno.EPERM, "Operation not permitted"), (errno.E2BIG, "Argument list too long"),
                       (524, "Unknown error 524"), (errno.EOPNOTSUPP, "Operation not supported")):
        if name in text:
            return code
    return None


def _have_caps() -> bool:
    caps = effective_capabilities()
    return "CAP_SYS_ADMIN" in caps or {"CAP_BPF", "CAP_PERFMON"} <= caps


def kprobe_interfaces() -> list[str]:
    """The kernel interfaces kprobes attach through that exist here (empty: no kprobes)."""
    found = [os.path.join(d, "kprobe_events") for d in TRACEFS_DIRS
             if os.path.exists(os.path.join(d, "kprobe_events"))]
    if os.path.isdir(KPROBE_PMU):
        found.append(KPROBE_PMU)
    return found


def error_injection_facts() -> str:
    """What the kernel says about function error injection (needed by override)."""
    if os.path.exists(ERROR_INJECTION_LIST):
        try:
            with open(ERROR_INJECTION_LIST, encoding="ascii", errors="replace") as fh:
                n = sum(1 for _ in fh)
            eil = f"{ERROR_INJECTION_LIST} lists {n} functions"
        except OSError as exc:
            eil = f"{ERROR_INJECTION_LIST} unreadable ({exc.strerror})"
    else:
        eil = f"{ERROR_INJECTION_LIST} does not exist"
    try:
        with open("/proc/kallsyms", encoding="ascii", errors="replace") as fh:
            n_eil = sum(1 for ln in fh if "_eil_addr_" in ln)
        eil += f"; /proc/kallsyms has {n_eil} _eil_addr_ entries"
    except OSError:
        pass
    return eil


class _NoAutoloadMixin:
    """bcc's BPF, minus the automatic load+attach of kfunc__/lsm__/... functions."""

    def _trace_autoload(self):  # noqa: D401 - bcc hook
        return None


class Kit:
    """One compiled bcc module holding the snippets of the mechanisms to probe.

    ``control_ok`` tells whether a plain tracepoint program loaded: the control
    that makes an EPERM for another program type conclusive.
    """

    def __init__(self, bcc, run: ProbeRun, names: list[str]) -> None:
        self.bcc = bcc
        self.run = run
        self.names = names
        BPF = bcc.BPF
        cls = type("_DoctorBPF", (_NoAutoloadMixin, BPF), {})
        text = "#include <uapi/linux/ptrace.h>\n#include <uapi/linux/bpf_perf_event.h>\n"
        text += "int dl_control(void *ctx) { return 0; }\n"
        text += "".join(SNIPPETS[n] for n in names if n in SNIPPETS)
        # USDT: bcc generates argument readers per target process, so the child that
        # will fire the probe is started (and waits) before the one compile
        contexts = []
        self.usdt_binary: str | None = None
        self.usdt_child: subprocess.Popen | None = None
        self.usdt_error: Exception | None = None
        if "USDT" in names:
            try:
                self.usdt_binary = usdt_binary()
                if self.usdt_binary is not None:
                    self.usdt_child = _gated_child(
                        run, "import gc\nfor _ in range(%d): gc.collect()\n" % N_CALLS, python=self.usdt_binary)
                    ctx = bcc.USDT(pid=self.usdt_child.pid)
                    ctx.enable_probe(probe="gc__start", fn_name="dl_usdt")
                    contexts.append(ctx)
                    text += _counter("dl_usdt", "struct pt_regs *ctx", match=None)
            except Exception as exc:  # noqa: BLE001 - reported by usdt(), the others go on
                self.usdt_error = exc
        # bcc quirk: freeing a USDT context closes a file descriptor number it does not
        # own (here the module's BTF fd), so the contexts must outlive the module and be
        # dropped right after its cleanup (closers run in reverse order)
        self.usdt_contexts = contexts
        run.on_close(self.usdt_contexts.clear)
        self.bpf = cls.__new__(cls)
        run.on_close(self.bpf.cleanup)
        self.bpf.__init__(text=text.encode(), usdt_contexts=contexts)  # may raise: cleanup is registered
        try:
            self.bpf.load_func(b"dl_control", BPF.TRACEPOINT)
            self.control_ok = True
        except Exception:  # noqa: BLE001
            self.control_ok = False


# --------------------------------------------------------------------------- C snippets

SNIPPETS: dict[str, str] = {
    "tracepoint": _counter("dl_tracepoint"),
    "raw tracepoint": _counter("dl_raw_tp", "struct bpf_raw_tracepoint_args *ctx"),
    "kprobe": "int dl_kprobe(struct pt_regs *ctx) { return 0; }\n",
    "kretprobe": "int dl_kretprobe(struct pt_regs *ctx) { return 0; }\n",
    "fentry/fexit": "KFUNC_PROBE(vfs_read) { return 0; }\nKRETFUNC_PROBE(vfs_read) { return 0; }\n",
    "uprobe": _counter("dl_uprobe", "struct pt_regs *ctx"),
    "uretprobe": _counter("dl_uretprobe", "struct pt_regs *ctx"),
    "perf event": _counter("dl_perf", "struct bpf_perf_event_data *ctx", match=None),
    "ring buffer": """
BPF_RINGBUF_OUTPUT(dl_rb_events, 4);
BPF_ARRAY(dl_rb_want, u32, 1);
struct dl_rb_rec { u32 tid; u32 magic; };
int dl_ringbuf(void *ctx) {
    u32 k = 0;
    u32 *want = dl_rb_want.lookup(&k);
    u32 tid = (u32)bpf_get_current_pid_tgid();
    if (!want || *want != tid) return 0;
    struct dl_rb_rec r = {};
    r.tid = tid;
    r.magic = 0x65627066;
    dl_rb_events.ringbuf_output(&r, sizeof(r), 0);
    return 0;
}
""",
    "LSM": "LSM_PROBE(socket_connect) { return 0; }\n",
    "cgroup socket hooks": _counter("dl_connect4", "struct bpf_sock_addr *ctx", match=None, ret="1"),
    "bpf_send_signal": f"""
BPF_ARRAY(dl_sig_want, u32, 1);
BPF_ARRAY(dl_sig_ret, s64, 2);
int dl_send_signal(void *ctx) {{
    u32 k = 0, k1 = 1;
    u32 *want = dl_sig_want.lookup(&k);
    /* only ever our own child: the pid is set from Python, 0 means nobody */
    if (!want || *want == 0 || *want != (u32)(bpf_get_current_pid_tgid() >> 32)) return 0;
    s64 r = bpf_send_signal({int(SIGNAL_SENT)});
    s64 *calls = dl_sig_ret.lookup(&k);
    if (calls) __sync_fetch_and_add(calls, 1);
    s64 *last = dl_sig_ret.lookup(&k1);
    if (last) *last = r;
    return 0;
}}
""",
    "override": """
BPF_ARRAY(dl_ov_gate, u32, 1);
int dl_override(struct pt_regs *ctx) {
    u32 k = 0;
    u32 *gate = dl_ov_gate.lookup(&k);
    /* the gate is never opened: this proves the helper loads without changing anything */
    if (gate && *gate == 0x6f76)
        bpf_override_return(ctx, -12);
    return 0;
}
""",
}


# --------------------------------------------------------------------------- one function per mechanism

def _fired(hits: int, what: str) -> Finding:
    if hits > 0:
        return Finding("ok", f"{what}: fired {hits} times for {N_CALLS} triggers")
    return Finding("unknown", f"{what}: loaded and attached, but never fired",
                   "rerun with refresh=True; if it stays unknown, report the detail")


def tracepoint(kit: Kit) -> Finding:
    """Load a TRACEPOINT program on syscalls:sys_enter_getppid and call getppid() 23 times."""
    b, BPF = kit.bpf, kit.bcc.BPF
    _set(b, "dl_tracepoint_want", _tid())
    b.load_func(b"dl_tracepoint", BPF.TRACEPOINT)
    b.attach_tracepoint(tp=b"syscalls:sys_enter_getppid", fn_name=b"dl_tracepoint")
    try:
        _syscall_getppid_n()
    finally:
        b.detach_tracepoint(b"syscalls:sys_enter_getppid")
    return _fired(_get(b, "dl_tracepoint_hits"), "tracepoint:syscalls:sys_enter_getppid")


def raw_tracepoint(kit: Kit) -> Finding:
    """Load a RAW_TRACEPOINT program on sys_enter and make syscalls from this thread."""
    b, BPF = kit.bpf, kit.bcc.BPF
    _set(b, "dl_raw_tp_want", _tid())
    b.load_func(b"dl_raw_tp", BPF.RAW_TRACEPOINT)
    b.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"dl_raw_tp")
    try:
        _syscall_getppid_n()
    finally:
        b.detach_raw_tracepoint(b"sys_enter")
    return _fired(_get(b, "dl_raw_tp_hits"), "rawtracepoint:sys_enter")


def _kprobe_like(kit: Kit, fn: str, ret: bool) -> Finding:
    b, BPF = kit.bpf, kit.bcc.BPF
    kind = "kretprobe" if ret else "kprobe"
    b.load_func(fn.encode(), BPF.KPROBE)  # this loads even without kprobes: only attaching tells
    event = KPROBE_TARGET  # a plain name: bcc's get_syscall_fnname would read all of kallsyms
    try:
        if ret:
            b.attach_kretprobe(event=event, fn_name=fn.encode())
            b.detach_kretprobe(event)
        else:
            b.attach_kprobe(event=event, fn_name=fn.encode())
            b.detach_kprobe(event)
    except Exception as exc:  # noqa: BLE001
        if not kprobe_interfaces():
            return Finding(
                "missing",
                f"a {kind} program loads, but attaching it to {event.decode()} fails: this kernel has no "
                f"kprobe interface (no kprobe_events in tracefs, no {KPROBE_PMU}): CONFIG_KPROBES is not "
                "set (`bpftool feature probe` still says 'available': it only loads)",
            )
        return Finding("unknown", f"attaching a {kind} failed: {exc}")
    return Finding("ok", f"{kind}:{event.decode()} loaded and attached")


def kprobe(kit: Kit) -> Finding:
    """Load a KPROBE program (it does nothing) and attach it to vfs_read."""
    return _kprobe_like(kit, "dl_kprobe", ret=False)


def kretprobe(kit: Kit) -> Finding:
    """Load a KPROBE program (it does nothing) and attach it as a kretprobe to vfs_read."""
    return _kprobe_like(kit, "dl_kretprobe", ret=True)


def _refused(kit: Kit, kind: str, exc: Exception, stderr: str) -> Finding:
    """Classify a failed load of a program type: conclusive only when clearly refused."""
    code = _errno_of(exc)
    said = _relevant(stderr) or str(exc)
    if code == errno.EPERM and kit.control_ok and _have_caps():
        return Finding(
            "missing",
            f"loading a {kind} program fails with EPERM although this process holds CAP_SYS_ADMIN and "
            "CAP_BPF and a tracepoint program loads fine: this kernel refuses the program type. "
            "It is not a privilege problem (bcc's 'Need super-user privileges' is misleading)",
        )
    if code in (errno.EINVAL, errno.E2BIG, 524, errno.EOPNOTSUPP) and kit.control_ok:
        return Finding("missing", f"the kernel does not know {kind} programs ({os.strerror(code) if code != 524 else 'ENOTSUPP'}: {said})")
    return Finding("unknown", f"loading a {kind} program failed: {exc} ({said})")


def fentry_fexit(kit: Kit) -> Finding:
    """Load fentry and fexit (BPF_PROG_TYPE_TRACING) programs on vfs_read and attach them."""
    b = kit.bpf
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return Finding("missing", "fentry/fexit need the kernel's BTF and /sys/kernel/btf/vmlinux does not exist")
    for attach, detach, label in ((b.attach_kfunc, b.detach_kfunc, "fentry"),
                                  (b.attach_kretfunc, b.detach_kretfunc, "fexit")):
        with capture_stderr() as err:
            try:
                attach(fn_name=b"vfs_read")
            except Exception as exc:  # noqa: BLE001
                failed = exc
            else:
                failed = None
        if failed is not None:
            return _refused(kit, f"{label} (tracing)", failed, "".join(err))
        detach(b"vfs_read")
    return Finding("ok", "fentry:vfs_read and fexit:vfs_read loaded and attached")


def lsm(kit: Kit) -> Finding:
    """Load an LSM program on the socket_connect hook (it allows everything) and attach it."""
    b = kit.bpf
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return Finding("missing", "LSM programs need the kernel's BTF and /sys/kernel/btf/vmlinux does not exist")
    with capture_stderr() as err:
        try:
            b.attach_lsm(fn_name=b"socket_connect")
        except Exception as exc:  # noqa: BLE001
            failed = exc
        else:
            failed = None
    if failed is not None:
        return _refused(kit, "LSM", failed, "".join(err))
    b.detach_lsm(b"socket_connect")
    return Finding("ok", "lsm:socket_connect loaded and attached (it allowed everything)")


def _uprobe_like(kit: Kit, ret: bool) -> Finding:
    b, BPF = kit.bpf, kit.bcc.BPF
    fn = "dl_uretprobe" if ret else "dl_uprobe"
    _set(b, f"{fn}_want", _tid())
    b.load_func(fn.encode(), BPF.KPROBE)
    attach = b.attach_uretprobe if ret else b.attach_uprobe
    detach = b.detach_uretprobe if ret else b.detach_uprobe
    attach(name=b"c", sym=b"getppid", fn_name=fn.encode(), pid=os.getpid())
    try:
        _syscall_getppid_n()
    finally:
        detach(name=b"c", sym=b"getppid", pid=os.getpid())
    kind = "uretprobe" if ret else "uprobe"
    return _fired(_get(b, f"{fn}_hits"), f"{kind} on libc's getppid in this process")


def uprobe(kit: Kit) -> Finding:
    """Attach a uprobe to libc's getppid, scoped to this process, and call it 23 times."""
    return _uprobe_like(kit, ret=False)


def uretprobe(kit: Kit) -> Finding:
    """Attach a uretprobe to libc's getppid, scoped to this process, and call it 23 times."""
    return _uprobe_like(kit, ret=True)


def perf_event(kit: Kit) -> Finding:
    """Attach a program to a software cpu-clock perf event on this thread and busy-loop until it fires."""
    b, BPF = kit.bpf, kit.bcc.BPF
    PerfType, PerfSWConfig = kit.bcc.PerfType, kit.bcc.PerfSWConfig
    b.load_func(b"dl_perf", BPF.PERF_EVENT)
    b.attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK,
                        fn_name=b"dl_perf", sample_period=1_000_000, pid=_tid())
    try:
        deadline = time.monotonic() + 2.0
        hits = 0
        while time.monotonic() < deadline:
            x = 0
            for i in range(20000):  # burn CPU on this thread so the clock samples it
                x += i
            hits = _get(b, "dl_perf_hits")
            if hits:
                break
    finally:
        b.detach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK)
    if hits:
        return Finding("ok", f"a software cpu-clock perf event (1 ms period) sampled this thread ({hits} sample(s))")
    return Finding("unknown", "a cpu-clock perf event attached but never fired in 2 s",
                   "rerun with refresh=True")


def ring_buffer(kit: Kit) -> Finding:
    """Have a tracepoint program write a record into a BPF ring buffer, then read it back."""
    b, BPF = kit.bpf, kit.bcc.BPF

    class Rec(ctypes.Structure):
        _fields_ = [("tid", ctypes.c_uint32), ("magic", ctypes.c_uint32)]

    got: list[tuple[int, int]] = []

    def on_event(_ctx, data, _size):
        rec = ctypes.cast(data, ctypes.POINTER(Rec)).contents
        got.append((rec.tid, rec.magic))

    _set(b, "dl_rb_want", _tid())
    b[b"dl_rb_events"].open_ring_buffer(on_event)
    b.load_func(b"dl_ringbuf", BPF.TRACEPOINT)
    b.attach_tracepoint(tp=b"syscalls:sys_enter_getppid", fn_name=b"dl_ringbuf")
    try:
        _syscall_getppid_n()
        deadline = time.monotonic() + 2.0
        while len(got) < N_CALLS and time.monotonic() < deadline:
            b.ring_buffer_poll(timeout=100)
    finally:
        b.detach_tracepoint(b"syscalls:sys_enter_getppid")
    mine = [g for g in got if g == (_tid(), 0x65627066)]
    if mine:
        return Finding("ok", f"BPF_RINGBUF_OUTPUT: read back {len(mine)} of {N_CALLS} records written "
                             "by a tracepoint program")
    return Finding("unknown", "the ring buffer was created and the program attached, but no record came back",
                   "rerun with refresh=True")


def cgroup2_mount() -> str | None:
    """Where the cgroup2 hierarchy is mounted (``/sys/fs/cgroup`` or ``.../unified``), if anywhere."""
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return parts[1]
    except OSError:
        pass
    return None


def _rmdir_retry(path: str) -> None:
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.02)
    os.rmdir(path)


def _gated_child(run: ProbeRun, code: str, python: str | None = None) -> subprocess.Popen:
    """Start a Python child that runs ``code`` only after :func:`_go`; its pid is known before.

    The child is fully started (it printed ``ready``) when this returns, so a
    probe scoped to its pid, or a move into a cgroup, can happen first.
    """
    wrapper = "import sys\nprint('ready', flush=True)\nsys.stdin.readline()\n" + code
    child = run.popen([python or sys.executable, "-I", "-S", "-c", wrapper],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if child.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the test child {python or sys.executable} did not start (exit code {child.wait()})")
    return child


def _go(child: subprocess.Popen, timeout: float = 10.0) -> int:
    """Release a child from :func:`_gated_child` and wait for its exit code."""
    child.stdin.write("go\n")
    child.stdin.close()
    return child.wait(timeout=timeout)


def cgroup_socket_hooks(kit: Kit) -> Finding:
    """Attach an allow-all connect4 program to a fresh cgroup and watch a child's connect() pass it."""
    b, BPF, run = kit.bpf, kit.bcc.BPF, kit.run
    BPFAttachType = kit.bcc.BPFAttachType
    root = cgroup2_mount()
    if root is None:
        return Finding("unknown", "no cgroup2 hierarchy is mounted, so there is nothing to attach to",
                       "mount one: `mount -t cgroup2 none /sys/fs/cgroup/unified`, then rerun")
    path = os.path.join(root, f"ebpf-lab-doctor-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    run.on_close(lambda: _rmdir_retry(path))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    run.on_close(lambda: os.close(fd))
    attach_type = BPFAttachType.CGROUP_INET4_CONNECT
    fn = b.load_func(b"dl_connect4", BPF.CGROUP_SOCK_ADDR, attach_type=attach_type)
    BPF.attach_func(fn, fd, attach_type)
    detached = []

    def detach() -> None:
        if not detached:
            detached.append(1)
            BPF.detach_func(fn, fd, attach_type)

    run.on_close(detach)
    # a waiting child is moved into the cgroup, then let go: its UDP connect()s run the hook
    child = _gated_child(run, "import socket\n"
                              "for _ in range(%d):\n"
                              "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                              "    s.connect(('127.0.0.1', 9)); s.close()\n" % N_CALLS)
    with open(os.path.join(path, "cgroup.procs"), "w", encoding="ascii") as fh:
        fh.write(str(child.pid))
    rc = _go(child)
    detach()
    hits = _get(b, "dl_connect4_hits")
    where = f"a new cgroup under {root}"
    if hits and rc == 0:
        return Finding("ok", f"a CGROUP_SOCK_ADDR connect4 program attached to {where} saw {hits} of "
                             f"{N_CALLS} connect() calls of a child in it, and allowed them")
    return Finding("unknown", f"connect4 program attached to {where}, but saw {hits} connects "
                              f"(child exit code {rc})", "rerun with refresh=True")


def bpf_send_signal(kit: Kit) -> Finding:
    """Have a tracepoint program send SIGUSR1 to a child of ours (only it) and see the child catch it."""
    b, BPF, run = kit.bpf, kit.bcc.BPF, kit.run
    code = ("import os, signal, time\n"
            "got = []\n"
            "signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))\n"
            "os.getppid()\n"
            "end = time.monotonic() + 3\n"
            "while not got and time.monotonic() < end: time.sleep(0.005)\n"
            "sys.exit(0 if got else 3)\n")
    child = _gated_child(run, code)
    _set(b, "dl_sig_want", child.pid)  # scoped to this one child
    b.load_func(b"dl_send_signal", BPF.TRACEPOINT)
    b.attach_tracepoint(tp=b"syscalls:sys_enter_getppid", fn_name=b"dl_send_signal")
    try:
        rc = _go(child)
    finally:
        _set(b, "dl_sig_want", 0)
        b.detach_tracepoint(b"syscalls:sys_enter_getppid")
    t = b[b"dl_sig_ret"]
    calls, last = int(t[t.Key(0)].value), int(t[t.Key(1)].value)
    if rc == 0 or rc == -int(SIGNAL_SENT):
        return Finding("ok", f"a tracepoint program sent SIGUSR1 to our own child {child.pid} "
                             f"({calls} call(s), helper returned {last}) and the child received it")
    if calls and last < 0:
        return Finding("unknown", f"bpf_send_signal returned {last} ({os.strerror(-last)})")
    return Finding("unknown", f"the child did not receive SIGUSR1 (exit code {rc}, helper ran {calls} times)",
                   "rerun with refresh=True")


def usdt(kit: Kit) -> Finding:
    """Attach to python's USDT probe ``python:gc__start`` in a child and make it fire with gc.collect().

    The child and the USDT context are set up by :class:`Kit` (before its compile).
    """
    binary = kit.usdt_binary
    if kit.usdt_error is not None:
        raise kit.usdt_error
    if binary is None:
        others = [p for p in _usdt_candidates() if _stapsdt_probes(p)]
        return Finding("unknown", "no Python interpreter with the python:gc__start USDT probe was found "
                                  f"to test with (binaries with USDT notes: {', '.join(others) or 'none found'})",
                       "install a Python built with --with-dtrace (Debian's python3 is), then rerun")
    rc = _go(kit.usdt_child)
    hits = _get(kit.bpf, "dl_usdt_hits")
    if hits:
        return Finding("ok", f"usdt:{binary}:python:gc__start fired {hits} times in a child that called "
                             f"gc.collect() {N_CALLS} times")
    return Finding("unknown", f"attached usdt:{binary}:python:gc__start, but it never fired "
                              f"(child exit code {rc})", "rerun with refresh=True")


def _usdt_candidates() -> list[str]:
    cands = [os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/lib/x86_64-linux-gnu/libc.so.6",
             "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"]
    seen, out = set(), []
    for c in cands:
        r = os.path.realpath(c)
        if r not in seen and os.path.exists(r):
            seen.add(r)
            out.append(r)
    return out


def _stapsdt_probes(path: str) -> list[tuple[str, str]]:
    """(provider, name) of every USDT probe in an ELF file's .note.stapsdt section."""
    try:
        from elftools.elf.elffile import ELFFile  # noqa: PLC0415
    except ImportError:
        return []
    found = []
    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            sec = elf.get_section_by_name(".note.stapsdt")
            if sec is None:
                return []
            for note in sec.iter_notes():
                if note["n_name"] != "stapsdt":
                    continue
                desc = note["n_desc"]
                raw = desc if isinstance(desc, (bytes, bytearray)) else desc.encode("latin-1")
                strs = raw[24 if elf.elfclass == 64 else 12:].split(b"\0")
                if len(strs) >= 2:
                    found.append((strs[0].decode(errors="replace"), strs[1].decode(errors="replace")))
    except (OSError, Exception):  # noqa: BLE001 - any unreadable file simply has no probes for us
        return found
    return found


def usdt_binary() -> str | None:
    """A Python interpreter on this machine that carries the ``python:gc__start`` USDT probe."""
    for path in _usdt_candidates()[:2]:
        if ("python", "gc__start") in _stapsdt_probes(path):
            return path
    return None


def override(kit: Kit) -> Finding:
    """Check bpf_override_return: load a kprobe program that could call it (gate closed), then attach it.

    Attaching goes to ``should_failslab`` (on the error-injection list) and the gate
    in the program is never opened, so nothing in the kernel changes.
    """
    b, BPF = kit.bpf, kit.bcc.BPF
    facts = error_injection_facts()
    with capture_stderr() as err:
        try:
            b.load_func(b"dl_override", BPF.KPROBE)
            load_error = None
        except Exception as exc:  # noqa: BLE001
            load_error = exc
    said = _relevant("".join(err))
    # "cannot use helper" (6.18) or "unknown func bpf_override_return#58" (stock 6.1): both conclusive
    helper_refused = load_error is not None and any(
        msg in "".join(err) for msg in ("cannot use helper bpf_override_return", "unknown func bpf_override_return"))
    if not kprobe_interfaces():
        why = ("the verifier also refuses the helper (CONFIG_BPF_KPROBE_OVERRIDE is not set)"
               if helper_refused else f"loading the program: {load_error or 'ok'}")
        return Finding("missing", f"override needs kprobes, which this kernel lacks; {why}; {facts}")
    if helper_refused:
        return Finding("missing", f"the verifier refuses bpf_override_return ({said}): "
                                  f"CONFIG_BPF_KPROBE_OVERRIDE is not set; {facts}")
    if load_error is not None:
        return Finding("unknown", f"loading a kprobe program using bpf_override_return failed: {load_error} ({said})")
    try:
        b.attach_kprobe(event=b"should_failslab", fn_name=b"dl_override")
    except Exception as exc:  # noqa: BLE001
        return Finding("unknown", f"bpf_override_return loads, but attaching to should_failslab failed: {exc}; {facts}")
    b.detach_kprobe(b"should_failslab")
    return Finding("ok", f"bpf_override_return loaded and attached to should_failslab (never used); {facts}")


# mechanisms whose snippets need the newest bcc features: compiled apart when the shared compile fails
EXOTIC = ("fentry/fexit", "LSM", "USDT")

# name -> function taking the shared Kit
PROBES: dict[str, Callable[[Kit], Finding]] = {
    "tracepoint": tracepoint,
    "raw tracepoint": raw_tracepoint,
    "kprobe": kprobe,
    "kretprobe": kretprobe,
    "fentry/fexit": fentry_fexit,
    "uprobe": uprobe,
    "uretprobe": uretprobe,
    "USDT": usdt,
    "perf event": perf_event,
    "ring buffer": ring_buffer,
    "LSM": lsm,
    "cgroup socket hooks": cgroup_socket_hooks,
    "bpf_send_signal": bpf_send_signal,
    "override": override,
}


def _compiles(bcc, run: ProbeRun) -> bool:
    """Does bcc compile and load a trivial program at all (headers, clang, privileges)?"""
    with capture_stderr():
        try:
            return Kit(bcc, run, []).control_ok
        except Exception:  # noqa: BLE001
            return False


def _guarded(name: str, fn: Callable[[], Finding]) -> Finding:
    """Run one probe: any surprise becomes ``unknown`` with the error and what bcc printed."""
    with capture_stderr() as err:
        try:
            found = fn()
        except Exception as exc:  # noqa: BLE001 - only conclusive answers may say missing
            found = None
            failure = exc
    if found is not None:
        return found
    said = _relevant("".join(err))
    detail = f"{type(failure).__name__}: {failure}" + (f" ({said})" if said else "")
    return Finding("unknown", f"probing {name} failed: {detail}",
                   "rerun with refresh=True; if it stays unknown, the detail is the kernel's answer")


def probe(names: list[str] | tuple[str, ...] | None = None) -> dict[str, Finding]:
    """Probe the given mechanisms (default: all of :data:`MECHANISMS`) and return their findings.

    Needs root (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN) and bcc; the caller
    (``doctor``) checks both first. Every program, perf event, uprobe, child
    process and cgroup is gone when this returns. bcc's compiler noise is
    captured, not printed.
    """
    from ._bcc import load_bcc  # noqa: PLC0415

    wanted = list(MECHANISMS if names is None else names)
    unknown_names = [n for n in wanted if n not in PROBES]
    if unknown_names:
        raise ValueError(f"not a mechanism: {unknown_names}; valid names: {', '.join(MECHANISMS)}")
    bcc = load_bcc()
    results: dict[str, Finding] = {}
    with ProbeRun() as run:
        kits: dict[str, Kit] = {}
        failures: dict[str, tuple[Exception, str]] = {}
        with capture_stderr() as err:
            try:
                shared = Kit(bcc, run, wanted)
            except Exception as exc:  # noqa: BLE001
                shared, shared_error = None, exc
        if shared is not None:
            kits = {n: shared for n in wanted}
        else:
            failures = {n: (shared_error, "".join(err)) for n in wanted}
            if len(wanted) > 1 and _compiles(bcc, run):
                # bcc works, so a snippet broke the shared compile: first set apart the ones
                # that depend most on the bcc version (BTF macros, USDT), then, if still
                # needed, isolate each mechanism
                plain = [n for n in wanted if n not in EXOTIC]
                groups = [plain] + [[n] for n in wanted if n in EXOTIC]
                while groups:
                    group = groups.pop(0)
                    if not group:
                        continue
                    with capture_stderr() as err_n:
                        try:
                            kit = Kit(bcc, run, group)
                        except Exception as exc:  # noqa: BLE001
                            kit = None
                            for n in group:
                                failures[n] = (exc, "".join(err_n))
                    if kit is not None:
                        for n in group:
                            kits[n] = kit
                            failures.pop(n, None)
                    elif len(group) > 1:
                        groups.extend([n] for n in group)
        for n, (exc, stderr) in failures.items():
            said = _relevant(stderr, 4)
            results[n] = Finding(
                "unknown",
                f"bcc could not compile the probe program: {exc}" + (f" ({said})" if said else ""),
                "check the `kernel headers` and `bcc` rows of ebpf_lab.doctor(); the detail is bcc's error",
            )
        for n in wanted:
            if n not in results:
                kit = kits[n]
                results[n] = _guarded(n, lambda: PROBES[n](kit))
    for n, f in results.items():
        if f.status == "missing" and not f.next_step:
            results[n] = Finding(f.status, f.detail, ALTERNATIVES[n])
    return {n: results[n] for n in wanted}
