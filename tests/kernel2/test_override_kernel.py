"""override() for real: a kernel built with CONFIG_FUNCTION_ERROR_INJECTION and
CONFIG_BPF_KPROBE_OVERRIDE (scripts/kernel_override.sh, cached outside the repo),
booted once under QEMU.

Inside it: doctor must say ``override`` ok; tests/test_firewall.py's override test
takes its real path (ConnectBlock(..., mechanism="override", unsafe=True) makes
23 connects fail with EPERM), and guest_tests.py's bpftrace override() test does
the same with a one-liner; notebook 05 (if present) runs top to bottom.

Opt-in: it runs under `make test-override-kernel` (EBPF_LAB_OVERRIDE_KERNEL=required) or
`EBPF_LAB_OVERRIDE_KERNEL=build make test` (setup_vm.sh then builds the kernel first);
once opted in, anything that does not work is a failure, never a skip. Without the
opt-in tests/conftest.py deselects it (the run's header says how to include it).
"""

from __future__ import annotations

import json
import os

import pytest

from ebpf_lab import vm

from test_kernel2 import (
    BOOT_TIMEOUT,
    _tail,
    assert_exercise_stubs_fail,
    assert_notebook_ran_live,
    assert_pytest_step_passed,
    assert_solutions_pass,
    run_guest,
    timing_line,
)

pytestmark = pytest.mark.timeout(BOOT_TIMEOUT + 600)


@pytest.fixture(scope="module")
def override(tmp_path_factory, summary_lines):
    ready = vm.readiness("override")
    if not ready.expected:
        pytest.fail(ready.reason)
    outdir, results, boot = run_guest(tmp_path_factory.mktemp("override"), "override",
                                      "facts,doctor,override,grade=override,notebooks=05")
    summary_lines.append(timing_line("kernel2: override", boot, results))
    return outdir, results


@pytest.mark.kernel2
def test_it_ran_inside_the_override_kernel(override):
    outdir, results = override
    inside = json.loads((outdir / "facts.json").read_text())
    assert inside["release"] != os.uname().release
    assert inside["release"] != vm.stock_kernel_release(), "booted the stock kernel, not the override build"


@pytest.mark.kernel2
def test_doctor_inside_reports_override_ok(override):
    outdir, results = override
    rows = json.loads((outdir / "doctor.json").read_text())
    for mechanism in ("override", "kprobe", "kretprobe"):
        assert rows[mechanism]["status"] == "ok", (mechanism, rows[mechanism], _tail(outdir / "doctor.out"))


@pytest.mark.kernel2
def test_override_paths_pass_inside(override):
    outdir, results = override
    cases = assert_pytest_step_passed(outdir, results, "override")
    names = [c["name"] for c in cases]
    assert any("test_override_mechanism_where_the_kernel_allows_it" in n for n in names), names
    assert any("test_override_makes_connect_fail_with_eperm" in n for n in names), names


@pytest.mark.kernel2
def test_override_exercises_grade_for_real_inside(override):
    outdir, results = override
    assert_solutions_pass(outdir, results)
    assert_exercise_stubs_fail(outdir, results)


@pytest.mark.kernel2
def test_notebook_05_runs_inside_the_override_kernel(override):
    outdir, results = override
    assert_notebook_ran_live(outdir, results, "05")
