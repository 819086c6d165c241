"""Privileged tests of what the lab's own kernel lacks: kprobes, kretprobes,
fentry/fexit, LSM programs and override().

They run INSIDE the second kernel (Debian's stock kernel, or the override kernel,
under QEMU: see tests/kernel2/guest.py and docs/KERNELS.md). The file is not
named test_*.py, so the host's `pytest` never collects it; the guest runs it by
path. Inside the guest (EBPF_LAB_GUEST=1) a mechanism that doctor does not
report as ok is a failure, not a skip: that kernel is known to have it.

Every test starts a workload with a prime count (23) and checks exact numbers
filtered to the workload's pid.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile

import pytest

from ebpf_lab import bpftrace
from ebpf_lab.session import ProbeRun
from ebpf_lab.workloads import random_name, workload

from conftest import require_feature

N = 23
IN_GUEST = os.environ.get("EBPF_LAB_GUEST") == "1"

pytestmark = pytest.mark.privileged


def need(mechanism: str) -> None:
    """In the guest the mechanism must work; elsewhere skip only if doctor says it is missing."""
    from ebpf_lab.doctor import mechanism_status

    if IN_GUEST:
        status, detail = mechanism_status(mechanism)
        assert status == "ok", f"{mechanism} must work on the second kernel, doctor says {status}: {detail}"
    else:
        require_feature(mechanism)


def _opened(lines: list[str], wl) -> list[str]:
    return sorted(ln.strip() for ln in lines if ln.strip().startswith(f"{wl.expected['dir']}/{wl.expected['prefix']}-"))


def test_doctor_reports_kprobe_kretprobe_fentry_and_lsm_ok():
    from ebpf_lab.doctor import mechanism_status

    if not IN_GUEST:
        require_feature("kprobe")
    rows = {name: mechanism_status(name) for name in ("kprobe", "kretprobe", "fentry/fexit", "LSM", "tracepoint")}
    bad = {name: row for name, row in rows.items() if row[0] != "ok"}
    assert not bad, f"doctor on {os.uname().release}: {bad}"


def test_kprobe_sees_every_open_of_the_workload():
    need("kprobe")
    wl = workload("open", N, name=random_name(prefix="k"))
    r = bpftrace('kprobe:do_sys_openat2 /pid == cpid/ { printf("%s\\n", str(uptr(arg1))); }', command=wl,
                 timeout=600)
    assert _opened(r.lines, wl) == sorted(wl.expected["paths"])


def test_kretprobe_sees_every_failed_open():
    need("kretprobe")
    wl = workload("open_missing", N, name=random_name(prefix="r"))
    r = bpftrace('kprobe:do_sys_openat2 /pid == cpid/ { @f[tid] = str(uptr(arg1)); }\n'
                 'kretprobe:do_sys_openat2 /pid == cpid && @f[tid] != ""/ '
                 '{ printf("%s\\t%d\\n", @f[tid], (int64)retval); delete(@f[tid]); }',
                 command=wl, timeout=600)
    ours = [ln.split("\t") for ln in r.lines if ln.startswith(f"{wl.expected['dir']}/{wl.expected['prefix']}-")]
    assert sorted(p for p, _ in ours) == sorted(wl.expected["paths"])
    assert {int(ret) for _, ret in ours} == {-2}  # -ENOENT, as the kernel returned it


def test_fentry_and_fexit_see_every_open():
    need("fentry/fexit")
    wl = workload("open", N, name=random_name(prefix="f"))
    r = bpftrace('kfunc:do_sys_openat2 /pid == cpid/ { printf("%s\\n", str(uptr(args->filename))); }\n'
                 'kretfunc:do_sys_openat2 /pid == cpid && strncmp(str(uptr(args->filename)), str($1), '
                 f'{len(wl.expected["dir"])}) == 0/ {{ @ok[retval >= 0] = count(); }}',
                 command=wl, args=[wl.expected["dir"]], timeout=600)
    assert _opened(r.lines, wl) == sorted(wl.expected["paths"])
    frame = r.maps["@ok"]
    assert frame.iloc[:, -1].tolist() == [N] and len(frame) == 1  # every open in the dir succeeded


LSM_PROGRAM = r"""
#include <linux/fs.h>
#include <linux/dcache.h>
struct name_t { char s[32]; };
BPF_HASH(opened, struct name_t, u64, 4096);
LSM_PROBE(file_open, struct file *file)
{
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET_PID)
        return 0;
    struct name_t key = {};
    bpf_probe_read_kernel_str(key.s, sizeof(key.s), file->f_path.dentry->d_name.name);
    opened.increment(key);
    if (DENY && MATCH)   /* only the workload's own files: the loader and libc open fine */
        return -1;       /* -EPERM */
    return 0;
}
"""


def _lsm_run(wl, deny: bool):
    from ebpf_lab._bcc import load_bcc

    bcc = load_bcc()
    with ProbeRun() as run:
        held = run.hold(wl, stdout=-1, stderr=-1)
        prefix = wl.expected["prefix"] + "-"
        match = " && ".join(f"key.s[{i}] == '{c}'" for i, c in enumerate(prefix))
        text = (LSM_PROGRAM.replace("TARGET_PID", str(held.pid)).replace("DENY", "1" if deny else "0")
                .replace("MATCH", f"({match})"))
        b = bcc.BPF(text=text.encode())
        run.on_close(b.cleanup)
        held.release()
        out, _ = held.proc.communicate(timeout=600)
        names = {bytes(k.s).split(b"\0", 1)[0].decode(): v.value for k, v in b[b"opened"].items()}
    return held.proc.returncode, out, names


@pytest.fixture
def shm_dir():
    """A directory on tmpfs. Not /tmp: in the guest /tmp is an overlayfs, which opens each
    file a second time on its upper layer, so file_open would fire twice per open()."""
    path = tempfile.mkdtemp(prefix="ebpf-lab-lsm-", dir="/dev/shm")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_lsm_file_open_sees_every_open(shm_dir):
    need("LSM")
    wl = workload("open", N, name=random_name(prefix="l"), dir=shm_dir)
    rc, _, names = _lsm_run(wl, deny=False)
    assert rc == 0
    ours = {n: c for n, c in names.items() if n.startswith(wl.expected["prefix"] + "-")}
    assert ours == {os.path.basename(p): 1 for p in wl.expected["paths"]}


def test_lsm_program_can_deny_the_workloads_opens(shm_dir):
    need("LSM")
    wl = workload("open", N, name=random_name(prefix="d"), dir=shm_dir)
    rc, out, names = _lsm_run(wl, deny=True)
    # the LSM hook runs after O_CREAT made each file, and refuses to open it (-EPERM)
    assert rc == 0
    assert out.decode().strip() == f"opened=0 failed={N}"
    ours = {n: c for n, c in names.items() if n.startswith(wl.expected["prefix"] + "-")}
    assert ours == {os.path.basename(p): 1 for p in wl.expected["paths"]}
    # outside that one process, nothing changed: the same workload opens everything
    assert workload("open", N).run().stdout.strip() == f"opened={N} failed=0"


def test_bcc_kprobe_counts_exactly_with_matching_headers():
    need("kprobe")
    from ebpf_lab._bcc import load_bcc

    bcc = load_bcc()
    wl = workload("getppid", N, name=random_name(prefix="b"))
    with ProbeRun() as run:
        held = run.hold(wl)
        b = bcc.BPF(text=("BPF_ARRAY(hits, u64, 1);\n"
                          "int on_getppid(struct pt_regs *ctx) {\n"
                          f"  if ((bpf_get_current_pid_tgid() >> 32) != {held.pid}) return 0;\n"
                          "  int k = 0; hits.increment(k); return 0; }\n").encode())
        run.on_close(b.cleanup)
        b.attach_kprobe(event=b.get_syscall_fnname(b"getppid"), fn_name=b"on_getppid")
        held.release()
        held.proc.wait(timeout=600)
        assert held.proc.returncode == 0
        assert b[b"hits"][ctypes.c_int(0)].value == N


def test_override_makes_connect_fail_with_eperm():
    """override() (bpf_override_return) needs CONFIG_BPF_KPROBE_OVERRIDE: the override kernel only."""
    need("override")
    wl = workload("connect", N, port=9, name=random_name(prefix="o"))
    r = bpftrace('kprobe:__x64_sys_connect /pid == cpid/ { override(-1); }', command=wl, unsafe=True, timeout=600)
    assert r.output[-1].strip() == f"connected=0 refused=0 denied={N}"
