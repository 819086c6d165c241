"""ebpf_lab.uprobes (instructions, func+offset hits) and ebpf_lab.recorded (labelled recordings).

Unit tests read files only (objdump on libc, JSON recordings). Privileged tests
attach real bcc uprobes at offsets inside libc's syscall() wrapper, which the
lab's workloads call for every syscall they make, and check exact hit counts
filtered to the workload (and the processes it starts), with a noisy neighbour
calling the same function meanwhile.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import require_feature

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "notebooks" / "recorded"


# ---------------------------------------------------------------- instructions (unit)

@pytest.mark.unit
def test_instructions_of_libc_syscall_start_at_zero_and_hold_the_syscall():
    from ebpf_lab import uprobes
    from ebpf_lab.elfsyms import symbol_address

    df = uprobes.instructions("libc", "syscall")
    assert list(df.columns) == ["offset", "address", "instruction"]
    offsets = list(df["offset"])
    assert offsets[0] == 0 and offsets == sorted(set(offsets))
    assert (df["instruction"] == "syscall").sum() == 1
    assert df.attrs["file_offset"] == symbol_address(uprobes.libc_path(), "syscall")


@pytest.mark.unit
def test_probe_offset_accepts_instruction_starts_only():
    from ebpf_lab import uprobes
    from ebpf_lab.elfsyms import symbol_address
    from ebpf_lab.errors import UsageError

    libc = uprobes.libc_path()
    base = symbol_address(libc, "syscall")
    offsets = list(uprobes.instructions("libc", "syscall")["offset"])
    assert uprobes.probe_offset("libc", "syscall") == base
    assert uprobes.probe_offset("libc", "syscall", offsets[2]) == base + offsets[2]
    inside = offsets[1] + 1 if offsets[1] + 1 not in offsets else offsets[2] + 1
    with pytest.raises(UsageError) as err:
        uprobes.probe_offset("libc", "syscall", inside)
    assert "not the start of an instruction" in str(err.value)
    assert str(offsets[1]) in err.value.next_step


@pytest.mark.unit
def test_function_hits_rejects_bad_targets_and_offsets_before_touching_the_kernel():
    from ebpf_lab import uprobes
    from ebpf_lab.errors import UsageError

    with pytest.raises(UsageError, match="uprobe:BINARY:FUNCTION"):
        uprobes.function_hits("tracepoint:syscalls:sys_enter_openat", [0], command="/bin/true")
    with pytest.raises(UsageError, match="at least one offset"):
        uprobes.function_hits("uprobe:libc:syscall", [], command="/bin/true")
    with pytest.raises(UsageError, match="not the start of an instruction"):
        uprobes.function_hits("uprobe:libc:syscall", [1], command="/bin/true")


# ---------------------------------------------------------------- recorded (unit)

@pytest.mark.unit
def test_record_then_load_round_trips_and_is_labelled(tmp_path):
    from ebpf_lab import recorded

    rec = recorded.record("echo_test", ["/bin/echo", "hello from", "the other kernel"], tmp_path,
                          machine="a test machine", program="echo", tool="echo")
    assert rec.output == "hello from the other kernel\n" and rec.exit_code == 0
    again = recorded.load("echo_test", tmp_path)
    assert again.output == rec.output and again.kernel == os.uname().release
    assert again.label == (f"Recorded on {os.uname().release} (a test machine) on {rec.recorded_at[:10]} "
                           "\u2014 not from your kernel")
    assert str(again).startswith(again.label) and again.label in again._repr_html_().replace("&#x27;", "'")
    assert recorded.available(tmp_path) == ["echo_test"]


@pytest.mark.unit
def test_show_says_no_recording_yet_instead_of_inventing_one(tmp_path):
    from ebpf_lab import recorded
    from ebpf_lab.errors import UsageError

    shown = recorded.show("kprobe_openat2", tmp_path)
    assert isinstance(shown, recorded.NoRecording)
    assert "No recording yet" in str(shown) and recorded.REGENERATE in str(shown)
    with pytest.raises(UsageError, match="no recording named"):
        recorded.load("kprobe_openat2", tmp_path)


@pytest.mark.unit
def test_a_recording_without_its_provenance_is_refused(tmp_path):
    from ebpf_lab import recorded
    from ebpf_lab.errors import UsageError

    (tmp_path / "bad.json").write_text(json.dumps({"name": "bad", "output": "made up"}))
    with pytest.raises(UsageError, match="lacks kernel, machine, recorded_at, command, program"):
        recorded.load("bad", tmp_path)


@pytest.mark.unit
@pytest.mark.parametrize("path", sorted(RECORDED.glob("*.json")), ids=lambda p: p.stem)
def test_committed_recordings_are_complete_and_came_from_another_kernel(path):
    from ebpf_lab import recorded

    rec = recorded.load(path.stem, RECORDED)
    assert rec.name == path.stem
    assert rec.kernel and rec.machine and rec.recorded_at and rec.command and rec.program
    # remade by the committed recorder (with --override for the override kernel's recordings)
    script, *flags = rec.regenerate.split(" (")[0].split()
    assert script == "scripts/record_kprobes.sh" and (RECORDED.parents[1] / script).exists(), rec.regenerate
    assert flags == (["--override"] if "error injection" in rec.machine else []), (rec.regenerate, rec.machine)
    assert "not from your kernel" in rec.label and rec.kernel in rec.label
    assert rec.output or rec.stderr, "a recording holds what the command printed"


# ---------------------------------------------------------------- function_hits (privileged)

def _errno_path_offset(listing) -> int:
    jae = listing[listing["instruction"].str.startswith("j")].iloc[0]["instruction"]
    return int(jae.rsplit("+", 1)[1].rstrip(">"), 16)


@pytest.mark.privileged
def test_hits_inside_syscall_count_entries_successes_and_failures_exactly(tmp_path):
    require_feature("uprobe")
    from ebpf_lab import uprobes
    from ebpf_lab.workloads import workload

    listing = uprobes.instructions("libc", "syscall")
    first_ret = int(listing[listing["instruction"] == "ret"]["offset"].iloc[0])
    n_ok, n_bad = 11, 23
    good = workload("open", n_ok, name="hitsok", dir=str(tmp_path))
    bad = workload("open_missing", n_bad, name="hitsbad", dir=str(tmp_path))
    # a neighbour making the same failing calls all along: it must not be counted
    noise = workload("open_missing", 5, name="hitsnoise", dir=str(tmp_path))
    neighbour = subprocess.Popen(["/bin/sh", "-c", 'while :; do "$@" >/dev/null; done', "noise", *noise],
                                 start_new_session=True)
    try:
        # two processes started by a shell: the counts follow the command's children
        df = uprobes.function_hits("uprobe:libc:syscall", [0, first_ret, _errno_path_offset(listing)],
                                   command=["/bin/sh", "-c", f"{shlex.join(good)}; {shlex.join(bad)}"])
    finally:
        os.killpg(neighbour.pid, 9)
        neighbour.wait()
    # each good open is followed by a close through syscall(); each failed open takes the errno path
    assert df["hits"].tolist() == [2 * n_ok + n_bad, 2 * n_ok, n_bad]
    assert df.attrs["output"].splitlines() == [f"opened={n_ok} failed=0", f"opened=0 failed={n_bad}"]


@pytest.mark.privileged
def test_kprobe_offsets_count_exactly_or_say_the_kernel_lacks_kprobes():
    from ebpf_lab import uprobes
    from ebpf_lab.doctor import mechanism_status
    from ebpf_lab.errors import NotSupportedError
    from ebpf_lab.workloads import workload

    w = workload("getppid", 23, name="kpoff23")
    status, _ = mechanism_status("kprobe")
    if status == "ok":
        df = uprobes.function_hits("kprobe:__x64_sys_getppid", [0], command=w)
        assert df["hits"].tolist() == [23]
    else:
        assert status == "missing"
        with pytest.raises(NotSupportedError) as err:
            uprobes.function_hits("kprobe:__x64_sys_getppid", [0], command=w)
        assert err.value.feature == "kprobes" and "uprobe" in err.value.next_step
