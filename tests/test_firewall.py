"""connect_block: rules block connect() only inside the lab's cgroup, and leave nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import require_feature
from ebpf_lab.errors import NotSupportedError, UsageError
from ebpf_lab.firewall import ConnectBlock, ConnectRule, cgroup_program, override_program, signal_program
from ebpf_lab.workloads import random_name, workload


@pytest.fixture
def server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(256)
    yield srv.getsockname()[1]
    srv.close()


def _lab_cgroups() -> set[str]:
    from ebpf_lab.cgroups import cgroup2_mount
    return {p.name for p in cgroup2_mount().iterdir() if p.name.startswith("ebpf-lab-")}


# ---- pure: the generated programs -------------------------------------------

@pytest.mark.unit
def test_rules_become_c_conditions():
    src = cgroup_program([ConnectRule(pid=42, comm="ab", net="10.0.0.0/8", port=443)], mode="deny")
    assert "pid == 42" in src and "port == 443" in src
    assert "comm[0] == 97 && comm[1] == 98 && comm[2] == 0" in src
    assert "(ctx->user_ip4 & 0xff) == 0xa" in src  # 10.0.0.0/8 in network order, loaded little-endian
    assert "int block = matched >= 0;" in src
    assert "int block = matched < 0;" in cgroup_program([ConnectRule(port=1)], mode="allow")


@pytest.mark.unit
def test_a_v4_rule_never_matches_v6_connects():
    src = cgroup_program([ConnectRule(net="127.0.0.1")])
    v6 = src.split("int connect6")[1]
    assert "matched = 0" not in v6


@pytest.mark.unit
def test_signal_and_override_programs_are_scoped_to_the_lab_cgroup():
    for src in (signal_program([ConnectRule(port=80)]), override_program([ConnectRule(port=80)])):
        assert "scope.check_current_task(0) != 1" in src
    assert "bpf_send_signal(9)" in signal_program([ConnectRule(port=80)])
    assert "bpf_override_return(ctx, -1)" in override_program([ConnectRule(port=80)])


@pytest.mark.unit
@pytest.mark.parametrize("kw", [{"comm": "x" * 16}, {"port": 70000}, {"net": "10.0.0.300/8"}])
def test_bad_rules_are_refused_with_a_next_step(kw):
    with pytest.raises(UsageError):
        ConnectRule(**kw)


@pytest.mark.unit
def test_blunt_mechanisms_need_unsafe():
    with pytest.raises(UsageError, match="unsafe=True"):
        ConnectBlock([ConnectRule(port=1)], mechanism="signal")


# ---- privileged: the real kernel ---------------------------------------------

@pytest.mark.privileged
def test_deny_rule_blocks_inside_and_outside_still_connects(server):
    require_feature("cgroup socket hooks")
    before = _lab_cgroups()
    with ConnectBlock([ConnectRule(port=server)], mode="deny") as fw:
        out = fw.run(workload("connect", 23, port=server, name=random_name()))
        assert out.stdout.strip() == "connected=0 refused=0 denied=23"
        outside = workload("connect", 7, port=server).run()  # not in the cgroup
        assert outside.stdout.strip() == "connected=7 refused=0 denied=0"
        stats = dict(zip(fw.stats["rule"], fw.stats["hits"]))
        assert stats == {"(allowed)": 0, "(blocked)": 23, f"port={server}": 23}
        path = fw.cgroup.path
    assert not path.exists()
    assert _lab_cgroups() == before


@pytest.mark.privileged
def test_allow_list_by_comm(server):
    require_feature("cgroup socket hooks")
    allowed = random_name()
    with ConnectBlock([ConnectRule(comm=allowed, net="127.0.0.0/8")], mode="allow") as fw:
        ok = fw.run(workload("connect", 11, port=server, name=allowed))
        blocked = fw.run(workload("connect", 13, port=server, name=random_name()))
        assert ok.stdout.strip() == "connected=11 refused=0 denied=0"
        assert blocked.stdout.strip() == "connected=0 refused=0 denied=13"
        assert list(fw.stats["hits"]) == [11, 13, 11]


@pytest.mark.privileged
def test_ipv6_rule_blocks_only_ipv6():
    require_feature("cgroup socket hooks")
    code = textwrap.dedent("""
        import socket
        for host in ("::1", "127.0.0.1"):
            try:
                socket.create_connection((host, 9), timeout=2)
                print(host, "connected")
            except OSError as e:
                print(host, e.errno)
    """)
    with ConnectBlock([ConnectRule(net="::1/128")], mode="deny") as fw:
        out = fw.run([sys.executable, "-c", code]).stdout.split("\n")
    # EPERM (1) for ::1; 127.0.0.1:9 is closed, so ECONNREFUSED (111): reached the network
    assert out[:2] == ["::1 1", "127.0.0.1 111"]


@pytest.mark.privileged
def test_signal_mechanism_kills_only_inside(server):
    require_feature("bpf_send_signal")
    with ConnectBlock([ConnectRule(port=server)], mechanism="signal", unsafe=True) as fw:
        inside = fw.run(workload("connect", 23, port=server, name=random_name()))
        outside = workload("connect", 5, port=server).run()
        assert inside.returncode == -signal.SIGKILL
        assert outside.stdout.strip() == "connected=5 refused=0 denied=0"
        assert list(fw.stats["hits"]) == [0, 1, 1]  # the first connect kills it


@pytest.mark.privileged
def test_override_mechanism_where_the_kernel_allows_it(server):
    from ebpf_lab.doctor import mechanism_status

    status, _ = mechanism_status("override")
    if status != "ok":
        with pytest.raises(NotSupportedError) as err:
            ConnectBlock([ConnectRule(port=server)], mechanism="override", unsafe=True)
        assert "cgroup" in str(err.value)  # names the alternative that works
        return
    with ConnectBlock([ConnectRule(port=server)], mechanism="override", unsafe=True) as fw:
        out = fw.run(workload("connect", 23, port=server, name=random_name()))
        assert out.stdout.strip() == "connected=0 refused=0 denied=23"


@pytest.mark.privileged
def test_cleanup_after_an_exception(server):
    require_feature("cgroup socket hooks")
    with pytest.raises(RuntimeError):
        with ConnectBlock([ConnectRule(port=server)]) as fw:
            path = fw.cgroup.path
            raise RuntimeError("learner's bug")
    assert not path.exists()
    assert workload("connect", 3, port=server).run().stdout.strip() == "connected=3 refused=0 denied=0"


@pytest.mark.privileged
def test_cleanup_after_the_owner_is_killed(server):
    """A notebook kernel killed with SIGKILL: links detach, the watchdog removes the cgroup."""
    require_feature("cgroup socket hooks")
    code = textwrap.dedent(f"""
        import sys, time
        from ebpf_lab.firewall import ConnectBlock, ConnectRule
        fw = ConnectBlock([ConnectRule(port={server})])
        held = fw._run.hold(["/bin/sleep", "600"])
        fw.cgroup.add(held.pid); held.release()
        print(fw.cgroup.path, held.pid, flush=True)
        time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    path, sleeper = owner.stdout.readline().split()
    assert os.path.isdir(path)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while (os.path.exists(path) or os.path.exists(f"/proc/{sleeper}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(path), "the lab's cgroup outlived its owner"
    assert not os.path.exists(f"/proc/{sleeper}"), "a process in the lab's cgroup outlived its owner"
    owner.stdout.close()
