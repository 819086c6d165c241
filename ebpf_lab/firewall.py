"""``connect_block``: an application firewall for ``connect()``, the reading path's exercise.

Rules match a connect by pid, comm, IP network (address with mask) and port; in
``mode="deny"`` (a blacklist) a matching connect is blocked, in ``mode="allow"``
(a whitelist) every connect that matches no rule is blocked. Three mechanisms,
taught in lesson 05 (``notebooks/05_override.ipynb``):

``"cgroup"`` (works here)
    ``cgroup/connect4`` and ``cgroup/connect6`` programs (BPF_PROG_TYPE_CGROUP_SOCK_ADDR)
    attached to a cgroup the lab creates. Returning 0 makes ``connect()`` fail
    with ``EPERM``; the kernel never starts the connection.
``"signal"`` (works here; needs ``unsafe=True``)
    a ``tracepoint:syscalls:sys_enter_connect`` program that calls
    ``bpf_send_signal(SIGKILL)``: the process dies at the next return to user
    space. The connect itself may still go out; it is a kill switch, not a filter.
``"override"`` (needs kprobes and CONFIG_BPF_KPROBE_OVERRIDE; ``unsafe=True``)
    a kprobe on ``__x64_sys_connect`` calling ``bpf_override_return(ctx, -EPERM)``,
    what bpftrace's ``override()`` does. ``__x64_sys_connect`` is on the kernel's
    error-injection list (ALLOW_ERROR_INJECTION), which is what makes it allowed.

Every rule applies only to processes the lab moved into its own cgroup
(:class:`ebpf_lab.cgroups.LabCgroup`): the signal and override programs check
``bpf_current_task_under_cgroup`` first, so nothing else on the machine is
touched. Programs are attached through BPF links, which the kernel detaches
when our process exits, and a watchdog removes the cgroup if we die.

The pure part -- :class:`ConnectRule` and the C generated from rules -- imports
without bcc; :class:`ConnectBlock` is the kernel-touching backend.
"""

from __future__ import annotations

import ctypes
import ipaddress
import subprocess
from dataclasses import dataclass
from typing import Sequence

from .errors import EbpfLabError, NotSupportedError, ProbeError, UsageError

__all__ = ["ConnectBlock", "ConnectRule", "cgroup_program", "override_program", "signal_program"]

MECHANISMS = ("cgroup", "signal", "override")
MODES = ("deny", "allow")
MAX_RULES = 32
# enum bpf_attach_type (include/uapi/linux/bpf.h)
BPF_CGROUP_INET4_CONNECT = 10
BPF_CGROUP_INET6_CONNECT = 11


@dataclass(frozen=True)
class ConnectRule:
    """One rule; every field given must match (``None`` matches anything).

    ``net`` is an address or a network with a mask: ``"127.0.0.1"``,
    ``"10.0.0.0/8"``, ``"::1"``, ``"fd00::/8"``.
    """

    pid: int | None = None
    comm: str | None = None
    net: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        if self.comm is not None and not 0 < len(self.comm.encode()) <= 15:
            raise UsageError(f"comm {self.comm!r} must be 1 to 15 bytes (the kernel keeps 15 and a NUL)")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port} is not between 0 and 65535")
        if self.net is not None:
            try:
                ipaddress.ip_network(self.net, strict=False)
            except ValueError as exc:
                raise UsageError(f"bad network {self.net!r}: {exc}",
                                 next_step="write an address or a network such as '10.0.0.0/8'") from None

    @property
    def network(self):
        return None if self.net is None else ipaddress.ip_network(self.net, strict=False)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("pid", self.pid), ("comm", self.comm), ("net", self.net),
                                         ("port", self.port)) if v is not None]
        return " ".join(parts) or "any connect"


def _words(packed: bytes) -> list[int]:
    """Network-order bytes as the u32 words a little-endian BPF program loads."""
    return [int.from_bytes(packed[i:i + 4], "little") for i in range(0, len(packed), 4)]


def _comm_cond(comm: str) -> str:
    raw = comm.encode()
    conds = [f"comm[{i}] == {b}" for i, b in enumerate(raw)]
    if len(raw) < 16:
        conds.append(f"comm[{len(raw)}] == 0")
    return " && ".join(conds)


def _rule_cond(rule: ConnectRule, family: int, ip_expr: str, port_expr: str) -> str | None:
    """C condition for ``rule`` in one address family, or None if it cannot match there."""
    conds = []
    if rule.pid is not None:
        conds.append(f"pid == {rule.pid}")
    if rule.comm is not None:
        conds.append(_comm_cond(rule.comm))
    if rule.port is not None:
        conds.append(f"{port_expr} == {rule.port}")
    net = rule.network
    if net is not None:
        if net.version != family:
            return None
        addr, mask = _words(net.network_address.packed), _words(net.netmask.packed)
        for i, (a, m) in enumerate(zip(addr, mask)):
            if m:
                conds.append(f"({ip_expr(i)} & {m:#x}) == {a:#x}")
    return "(" + (" && ".join(conds) or "1") + ")"


def _check_rules(rules: Sequence[ConnectRule], mode: str) -> list[ConnectRule]:
    rules = list(rules)
    if mode not in MODES:
        raise UsageError(f"mode must be one of {MODES}, not {mode!r}",
                         next_step="'deny' blocks what matches (a blacklist); 'allow' blocks the rest")
    if len(rules) > MAX_RULES:
        raise UsageError(f"at most {MAX_RULES} rules, got {len(rules)}")
    if not all(isinstance(r, ConnectRule) for r in rules):
        raise UsageError("rules must be ConnectRule objects", next_step="ConnectRule(port=80, net='10.0.0.0/8')")
    return rules


def _match_block(rules: Sequence[ConnectRule], family: int, ip_expr, port_expr: str) -> str:
    lines = ["    int matched = -1;"]
    for i, rule in enumerate(rules):
        cond = _rule_cond(rule, family, ip_expr, port_expr)
        if cond is not None:
            lines.append(f"    if (matched < 0 && {cond}) matched = {i};  // {rule.describe()}")
    return "\n".join(lines)


_COMMON = """\
#include <uapi/linux/bpf.h>
#include <linux/socket.h>

// hits[0]: connects allowed, hits[1]: connects blocked, hits[2 + i]: connects that matched rule i
BPF_ARRAY(hits, u64, {n});

static __always_inline void count(int idx) {{
    u64 *v = hits.lookup(&idx);
    if (v) __sync_fetch_and_add(v, 1);
}}

static __always_inline int verdict(int matched) {{
    // returns 1 to block
    if (matched >= 0) count(2 + matched);
    int block = {block_expr};
    count(block ? 1 : 0);
    return block;
}}
"""


def _common(rules: Sequence[ConnectRule], mode: str) -> str:
    block_expr = "matched >= 0" if mode == "deny" else "matched < 0"
    return _COMMON.format(n=len(rules) + 2, block_expr=block_expr)


def cgroup_program(rules: Sequence[ConnectRule], mode: str = "deny") -> str:
    """The C of the cgroup mechanism: functions ``connect4`` and ``connect6``."""
    rules = _check_rules(rules, mode)
    out = [_common(rules, mode)]
    for family, fn, ip_expr in ((4, "connect4", lambda i: "ctx->user_ip4"),
                                (6, "connect6", lambda i: f"ctx->user_ip6[{i}]")):
        out.append(f"""
int {fn}(struct bpf_sock_addr *ctx) {{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    char comm[16] = {{}};
    bpf_get_current_comm(&comm, sizeof(comm));
    u32 port = __builtin_bswap16((u16)ctx->user_port);
{_match_block(rules, family, ip_expr, "port")}
    return verdict(matched) ? 0 : 1;   // 0: connect() fails with EPERM
}}
""")
    return "".join(out)


def _syscall_side(rules: Sequence[ConnectRule], mode: str, action: str, head: str, addr_expr: str) -> str:
    """Shared body of the signal and override programs: read the sockaddr, match, act."""
    v4 = _match_block(rules, 4, lambda i: "sa.sin_addr.s_addr", "port").replace("\n", "\n    ")
    v6 = _match_block(rules, 6, lambda i: f"sa6.sin6_addr.in6_u.u6_addr32[{i}]", "port").replace("\n", "\n    ")
    return f"""{_common(rules, mode)}
#include <linux/in.h>
#include <linux/in6.h>
BPF_CGROUP_ARRAY(scope, 1);

{head} {{
    if (scope.check_current_task(0) != 1) return 0;   // only the lab's own cgroup
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    char comm[16] = {{}};
    bpf_get_current_comm(&comm, sizeof(comm));
    void *uaddr = {addr_expr};
    u16 family = 0;
    bpf_probe_read_user(&family, sizeof(family), uaddr);
    if (family == AF_INET) {{
        struct sockaddr_in sa = {{}};
        bpf_probe_read_user(&sa, sizeof(sa), uaddr);
        u32 port = __builtin_bswap16(sa.sin_port);
    {v4}
        if (verdict(matched)) {{ {action} }}
    }} else if (family == AF_INET6) {{
        struct sockaddr_in6 sa6 = {{}};
        bpf_probe_read_user(&sa6, sizeof(sa6), uaddr);
        u32 port = __builtin_bswap16(sa6.sin6_port);
    {v6}
        if (verdict(matched)) {{ {action} }}
    }}
    return 0;
}}
"""


def signal_program(rules: Sequence[ConnectRule], mode: str = "deny") -> str:
    """The C of the signal mechanism: SIGKILL from ``sys_enter_connect``."""
    rules = _check_rules(rules, mode)
    return _syscall_side(rules, mode, "bpf_send_signal(9);",
                         "TRACEPOINT_PROBE(syscalls, sys_enter_connect)", "(void *)args->uservaddr")


def override_program(rules: Sequence[ConnectRule], mode: str = "deny") -> str:
    """The C of the override mechanism: ``bpf_override_return(-EPERM)`` on ``__x64_sys_connect``."""
    rules = _check_rules(rules, mode)
    body = _syscall_side(rules, mode, "bpf_override_return(ctx, -1);",
                         "int kprobe____x64_sys_connect(struct pt_regs *ctx)", "read_uaddr(ctx)")
    helper = """
static __always_inline void *read_uaddr(struct pt_regs *ctx) {
    // __x64_sys_connect(const struct pt_regs *regs): the user's arguments are in *regs
    struct pt_regs *regs = (struct pt_regs *)PT_REGS_PARM1(ctx);
    void *uaddr = 0;
    bpf_probe_read_kernel(&uaddr, sizeof(uaddr), &regs->si);
    return uaddr;
}
"""
    return body.replace("BPF_CGROUP_ARRAY(scope, 1);", "BPF_CGROUP_ARRAY(scope, 1);\n" + helper, 1)


class _Libbpf:
    """bpf_link_create through libbpf.so.1: links detach when our fds close."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError:
            self.lib = None
        else:
            self.lib.bpf_link_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
            self.lib.bpf_link_create.restype = ctypes.c_int

    def link_create(self, prog_fd: int, target_fd: int, attach_type: int) -> int:
        if self.lib is None:
            raise NotSupportedError("libbpf.so.1 is not installed, so BPF links cannot be made",
                                    feature="BPF links", next_step="run `make setup` (installs libbpf1)")
        fd = self.lib.bpf_link_create(prog_fd, target_fd, attach_type, None)
        if fd < 0:
            import os  # noqa: PLC0415

            raise OSError(-fd, os.strerror(-fd))
        return fd


class ConnectBlock:
    """Block ``connect()`` for processes the lab starts, by rules.

    >>> from ebpf_lab import ConnectBlock, ConnectRule
    >>> with ConnectBlock([ConnectRule(port=9)], mode="deny") as fw:      # doctest: +SKIP
    ...     fw.run(["curl", "http://127.0.0.1:9/"]).returncode           # EPERM: 7
    ...     fw.stats                                                     # hits per rule

    ``mechanism`` is ``"cgroup"`` (default), ``"signal"`` or ``"override"``; the
    last two change what a process experiences far more bluntly and need
    ``unsafe=True``, like bpftrace's ``--unsafe``.
    """

    def __init__(self, rules: Sequence[ConnectRule], *, mode: str = "deny", mechanism: str = "cgroup",
                 unsafe: bool = False) -> None:
        from . import _bcc  # noqa: PLC0415
        from .cgroups import LabCgroup  # noqa: PLC0415
        from .session import ProbeRun  # noqa: PLC0415

        if mechanism not in MECHANISMS:
            raise UsageError(f"mechanism must be one of {MECHANISMS}, not {mechanism!r}")
        if mechanism != "cgroup" and not unsafe:
            raise UsageError(f"the {mechanism!r} mechanism changes what processes experience "
                             "(it kills them or fakes a syscall's result)",
                             next_step="pass unsafe=True to opt in; it only touches processes in the lab's cgroup")
        self.rules = _check_rules(rules, mode)
        self.mode, self.mechanism = mode, mechanism
        self.program = {"cgroup": cgroup_program, "signal": signal_program,
                        "override": override_program}[mechanism](self.rules, mode)
        _bcc.require_root("blocking connect()")
        if mechanism == "override":
            from .doctor import mechanism_status  # noqa: PLC0415

            status, detail = mechanism_status("override")
            if status != "ok":
                raise NotSupportedError(f"override() is not available on this kernel: {detail}",
                                        feature="override (bpf_override_return)",
                                        alternative="mechanism='cgroup' (cgroup/connect4 programs) or "
                                                    "mechanism='signal' (bpf_send_signal)")
        bcc = _bcc.load_bcc()
        self._run = ProbeRun()
        self._links: list[int] = []
        try:
            self.cgroup = LabCgroup()
            self._run.on_close(self.cgroup.close)
            self._bpf = _bcc.compile_quietly(bcc, self.program, what=f"connect_block ({mechanism})")
            self._run.on_close(self._bpf.cleanup)
            if mechanism == "cgroup":
                lib = _Libbpf()
                for fn, attach in (("connect4", BPF_CGROUP_INET4_CONNECT), ("connect6", BPF_CGROUP_INET6_CONNECT)):
                    prog = _bcc.load_func_quietly(self._bpf, fn, bcc.BPF.CGROUP_SOCK_ADDR, attach_type=attach,
                                                  text=self.program, what=f"cgroup/{fn}")
                    self._links.append(lib.link_create(prog.fd, self.cgroup.fd, attach))
                self._run.on_close(self._close_links)
            else:
                # the TRACEPOINT_PROBE / kprobe__ functions attached themselves when compiled
                self._bpf[b"scope"][0] = self.cgroup.fd
        except EbpfLabError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise ProbeError(f"could not set up connect_block ({mechanism}): {exc}", program=self.program,
                             next_step="check `ebpf-lab doctor` for 'cgroup socket hooks' and 'bpf_send_signal'") from exc

    def _close_links(self) -> None:
        import os  # noqa: PLC0415

        for fd in self._links:
            os.close(fd)
        self._links.clear()

    def run(self, command, *, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``command`` inside the lab's cgroup, with the rules in force, to completion."""
        held = self._run.hold(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.cgroup.add(held.pid)
        held.release()
        try:
            out, err = held.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            held.close()
            out, err = held.proc.communicate()
        return subprocess.CompletedProcess(held.argv, held.proc.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))

    @property
    def stats(self):
        """Connects seen in the cgroup: allowed, blocked, and hits per rule."""
        import pandas as pd  # noqa: PLC0415

        hits = self._bpf[b"hits"]
        value = {int(k.value): int(v.value) for k, v in hits.items()}
        rows = [{"rule": "(allowed)", "hits": value.get(0, 0)}, {"rule": "(blocked)", "hits": value.get(1, 0)}]
        rows += [{"rule": r.describe(), "hits": value.get(2 + i, 0)} for i, r in enumerate(self.rules)]
        return pd.DataFrame(rows)

    def close(self) -> None:
        """Detach the programs, kill what runs in the cgroup, remove it. Safe to call twice."""
        if getattr(self, "_run", None) is not None:
            self._run.close()

    def __enter__(self) -> "ConnectBlock":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
