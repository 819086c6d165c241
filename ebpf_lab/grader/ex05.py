"""Checks for chapter 05, override and connect_block (exercises/05_override/).

The learner writes functions that return firewall rules
(:class:`ebpf_lab.firewall.ConnectRule`). The grader enforces them FOR REAL with
:class:`ebpf_lab.firewall.ConnectBlock` on workloads it starts fresh inside the
lab's cgroup -- random process names, random ports, blocked and allowed
connects mixed -- and reads what each workload experienced from its own
report (``connected=.. refused=.. denied=..``): a blocked ``connect()`` fails
with EPERM ("denied"); an allowed one reaches the port (nobody listens there,
so "refused", or "connected"). The signal variant expects the blocked workload
to be killed; the override variant is graded only where the kernel has
``bpf_override_return``, else skipped naming the variant that works.
"""

from __future__ import annotations

import ast
import re

from .common import comm_name, prime
from .framework import Check, ExerciseSpec, RunFailure, Scenario, Trial
from .model import fail, ok

__all__ = ["SPECS", "enforce", "parse_rules"]

CHAPTER = "05_override"
_REPORT = re.compile(r"connected=(\d+) refused=(\d+) denied=(\d+)")


def parse_rules(value) -> list:
    """The learner's returned rules (as the child process printed them) back as ConnectRule objects."""
    from ..firewall import ConnectRule  # noqa: PLC0415

    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RunFailure(f"the function should return a list of ConnectRule, but it returned {value!r}")
    rules = []
    for item in value:
        try:
            node = ast.parse(str(item), mode="eval").body
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ConnectRule" and not node.args):
                raise ValueError
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
            rules.append(ConnectRule(**kwargs))
        except Exception:  # noqa: BLE001 - anything else is not a rule
            raise RunFailure(f"the list should hold only ConnectRule objects, but it holds {item!r}") from None
    return rules


def _ports(rng, k: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < k:
        p = rng.randint(20000, 60000)
        if p not in ports:
            ports.append(p)
    return ports


def enforce(rules, mode: str, runs: list[dict], mechanism: str = "cgroup") -> list[dict]:
    """Run each workload of ``runs`` ({"comm", "port", "n"}) under the rules; what each experienced."""
    from ..firewall import ConnectBlock  # noqa: PLC0415
    from ..workloads import workload  # noqa: PLC0415

    results = []
    with ConnectBlock(rules, mode=mode, mechanism=mechanism, unsafe=mechanism != "cgroup") as fw:
        for r in runs:
            proc = fw.run(workload("connect", r["n"], name=r["comm"], port=r["port"]), timeout=30)
            m = _REPORT.search(proc.stdout)
            connected, refused, denied = (int(x) for x in m.groups()) if m else (0, 0, 0)
            results.append({**r, "returncode": proc.returncode, "allowed": connected + refused, "denied": denied,
                            "killed": proc.returncode == -9, "reported": bool(m)})
    return results


def _describe(r: dict) -> str:
    return f"{r['n']} connects by {r['comm']!r} to port {r['port']}"


def _outcomes(out, truth) -> list[dict]:
    """Enforce the learner's rules once per trial (the result is kept on the truth)."""
    if "_results" not in truth:
        if out.get("type") != "value":
            raise RunFailure(f"the function should return a list of ConnectRule, but it returned {out.get('type')}")
        rules = parse_rules(out["value"])
        from ..errors import EbpfLabError  # noqa: PLC0415

        try:
            truth["_results"] = enforce(rules, truth["mode"], truth["runs"], truth.get("mechanism", "cgroup"))
        except EbpfLabError as exc:
            raise RunFailure(f"your rules could not be enforced: {exc}") from None
    return truth["_results"]


def _check_runs(which: str):
    """A check over the runs whose expected verdict is ``which`` ("blocked" or "allowed")."""
    def check(out, truth):
        results = _outcomes(out, truth)
        mech = truth.get("mechanism", "cgroup")
        for r in results:
            if r["expect"] != which:
                continue
            if which == "blocked":
                if mech == "signal":
                    if not r["killed"]:
                        return fail(f"expected the process making {_describe(r)} to be killed before it "
                                    f"finished, but it exited with status {r['returncode']}")
                elif r["denied"] != r["n"]:
                    return fail(f"expected all {_describe(r)} to be blocked (mode={truth['mode']!r}), "
                                f"but {r['denied']} of {r['n']} were")
            else:
                if mech == "signal" and r["killed"]:
                    return fail(f"expected {_describe(r)} to go through, but the process was killed")
                if r["denied"] or not r["reported"]:
                    return fail(f"expected all {_describe(r)} to go through (mode={truth['mode']!r}), but "
                                f"{r['denied'] if r['reported'] else 'all'} of {r['n']} were blocked")
        return ok()
    return check


def _scenario(call_args, mode, runs, mechanism="cgroup") -> Scenario:
    return Scenario(job={"call_args": list(call_args)},
                    truth={"mode": mode, "runs": runs, "mechanism": mechanism})


def _run(comm, port, rng, expect):
    return {"comm": comm, "port": port, "n": prime(rng, 11, 23), "expect": expect}


def _checks(blocked: str, allowed: str, hidden_allowed: bool = False) -> list[Check]:
    return [Check(blocked, 2, _check_runs("blocked")),
            Check(allowed, 1, _check_runs("allowed"), hidden=hidden_allowed)]

# ---------------------------------------------------------------- 05.1 block a port


def _port_setup(rng, tmp):
    port, other = _ports(rng, 2)
    a, b = comm_name(rng), comm_name(rng)
    runs = [_run(a, port, rng, "blocked"), _run(b, other, rng, "allowed"), _run(b, port, rng, "blocked")]
    return _scenario([port], "deny", runs)


SPEC_05_1 = ExerciseSpec(
    id="05.1", title="Deny list: block every connect to one port", chapter=CHAPTER, filename="05.1_block_port.py",
    function="block_port",
    trials=[Trial(_port_setup, _checks("connects to the port are blocked, whoever makes them",
                                       "connects to other ports go through"), needs=("cgroup socket hooks",),
                  timeout=30)],
)

# ---------------------------------------------------------------- 05.2 block a comm to a port


def _comm_port_setup(rng, tmp):
    port, other = _ports(rng, 2)
    comm, stranger = comm_name(rng), comm_name(rng)
    runs = [_run(comm, port, rng, "blocked"), _run(stranger, port, rng, "allowed"),
            _run(comm, other, rng, "allowed")]
    return _scenario([comm, port], "deny", runs)


def _comm_port_spec(id_, title, filename, function, mechanism="cgroup", needs=("cgroup socket hooks",),
                    variant=""):
    def setup(rng, tmp):
        sc = _comm_port_setup(rng, tmp)
        sc.truth["mechanism"] = mechanism
        return sc
    blocked = "the named process's connects to the port are " + ("killed" if mechanism == "signal" else "blocked")
    return ExerciseSpec(id=id_, title=title, chapter=CHAPTER, filename=filename, function=function,
                        variant=variant,
                        trials=[Trial(setup, _checks(blocked, "other processes, and other ports, go through"),
                                      needs=needs, timeout=30)])


SPEC_05_2 = _comm_port_spec("05.2", "Deny list: one process name to one port", "05.2_block_comm_port.py",
                            "block_comm_port")

# ---------------------------------------------------------------- 05.3 networks with a mask

_MATCHING = ("127.0.0.0/8", "127.0.0.0/16", "127.0.0.0/24", "127.0.0.1/32", "127.0.0.0/30")
_NOT_MATCHING = ("10.0.0.0/8", "192.168.0.0/16", "127.0.0.2/32", "127.128.0.0/9", "127.0.1.0/24")


def _net_setup(matching: bool):
    def setup(rng, tmp):
        port, other = _ports(rng, 2)
        net = rng.choice(_MATCHING if matching else _NOT_MATCHING)
        comm = comm_name(rng)
        if matching:
            runs = [_run(comm, port, rng, "blocked"), _run(comm, other, rng, "allowed")]
        else:
            runs = [_run(comm, port, rng, "allowed")]
        return _scenario([net, port], "deny", runs)
    return setup


SPEC_05_3 = ExerciseSpec(
    id="05.3", title="Deny list: a network with a mask, and a port", chapter=CHAPTER, filename="05.3_block_net.py",
    function="block_net",
    trials=[Trial(_net_setup(True), _checks("connects to 127.0.0.1 on the port are blocked when the network "
                                            "holds 127.0.0.1", "other ports go through"),
                  needs=("cgroup socket hooks",), timeout=30),
            Trial(_net_setup(False), [Check("a network that does not hold 127.0.0.1 blocks nothing", 1,
                                            _check_runs("allowed"), hidden=True)],
                  needs=("cgroup socket hooks",), timeout=30)],
)

# ---------------------------------------------------------------- 05.4 allow list of ports


def _allow_ports_setup(rng, tmp):
    ports = _ports(rng, 4)
    allowed, other = ports[:3], ports[3]
    k = rng.randint(1, 3)
    comm = comm_name(rng)
    runs = [_run(comm, p, rng, "allowed") for p in allowed[:k]] + [_run(comm, other, rng, "blocked")]
    return _scenario([allowed[:k]], "allow", runs)


SPEC_05_4 = ExerciseSpec(
    id="05.4", title="Allow list: only these ports", chapter=CHAPTER, filename="05.4_allow_ports.py",
    function="allow_ports",
    trials=[Trial(_allow_ports_setup, _checks("a port not on the list is blocked",
                                              "every port on the list goes through"),
                  needs=("cgroup socket hooks",), timeout=30)],
)

# ---------------------------------------------------------------- 05.5 allow list: one program, one port


def _allow_comm_setup(rng, tmp):
    port, other = _ports(rng, 2)
    comm, stranger = comm_name(rng), comm_name(rng)
    runs = [_run(comm, port, rng, "allowed"), _run(comm, other, rng, "blocked"),
            _run(stranger, port, rng, "blocked")]
    return _scenario([comm, port], "allow", runs)


SPEC_05_5 = ExerciseSpec(
    id="05.5", title="Allow list: one process name, one port", chapter=CHAPTER, filename="05.5_allow_comm.py",
    function="allow_comm",
    trials=[Trial(_allow_comm_setup, _checks("other ports, and other processes, are blocked",
                                             "the named process reaches its port"),
                  needs=("cgroup socket hooks",), timeout=30)],
)

# ---------------------------------------------------------------- 05.6 the same rules, as a kill switch

SPEC_05_6 = _comm_port_spec("05.6", "Kill switch: bpf_send_signal instead of blocking", "05.6_kill_switch.py",
                            "kill_rules", mechanism="signal", needs=("tracepoint", "bpf_send_signal"))

# ---------------------------------------------------------------- 05.7 the same rules, with override()

SPEC_05_7 = _comm_port_spec("05.7", "override(): make connect() fail inside the kernel function",
                            "05.7_override.py", "override_rules", mechanism="override", needs=("override",),
                            variant="05.2 (the same rules, enforced by a cgroup connect4 program)")

SPECS = [SPEC_05_1, SPEC_05_2, SPEC_05_3, SPEC_05_4, SPEC_05_5, SPEC_05_6, SPEC_05_7]
