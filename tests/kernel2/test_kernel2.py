"""The second kernel: kprobes, fentry and LSM run for real, in Debian's stock kernel under QEMU.

The host kernel lacks them, so this tier boots Debian's stock 6.1 kernel ONCE
(virtme-ng, software emulation, this machine's root filesystem) and runs
tests/kernel2/guest.py inside it: doctor, the privileged tests of those
mechanisms (tests/kernel2/guest_tests.py and a few tests/test_*.py items),
every kprobe/fentry/LSM exercise's solution and stub through `ebpf-lab grade`,
notebooks 03-05, and a deliberately failing check. The guest writes its
results to a directory shared with the host; the tests below read them.

Whether the VM is *expected* to boot is decided from facts (root, qemu, vng, the
kernel image that scripts/setup_vm.sh installs: :func:`ebpf_lab.vm.readiness`).
Expected and not booting is a failure; not expected is a skip that says what is
missing only where the VM conclusively cannot run (not x86_64, or EBPF_LAB_VM=0); under CI a VM
that is not ready fails the run, since `make test` sets it up first.
Deselect the tier with -m 'not kernel2'; run only it with `make test-kernels`.
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import IN_CI
from ebpf_lab import vm

ROOT = Path(__file__).resolve().parents[2]
GUEST = ROOT / "tests" / "kernel2" / "guest.py"
PY = ROOT / ".venv" / "bin" / "python"
STEPS = "facts,doctor,pytest,grade,notebooks,selftest"
MUST_BE_OK = ("kprobe", "kretprobe", "fentry/fexit", "LSM")
# the first test of a module boots the VM inside its fixture, which counts against its pytest
# timeout: software emulation on a loaded 2-core machine takes tens of minutes for the suite
BOOT_TIMEOUT = 4800
pytestmark = pytest.mark.timeout(BOOT_TIMEOUT + 600)
TIMING_FILE = Path(os.environ.get("EBPF_LAB_KERNEL_CACHE", "/var/cache/ebpf-lab/kernels")) / "last_kernel2_run.json"


# ---------------------------------------------------------------- helpers (also used by the override tier)

def junit_cases(path: Path) -> list[dict]:
    """Every testcase of a junit XML file: name, outcome (passed/failed/error/skipped), message."""
    cases = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            el = tc.find(kind)
            if el is not None:
                outcome = "failed" if kind == "failure" else kind
                message = (el.get("message") or "") + "\n" + (el.text or "")
                break
        cases.append({"name": f"{tc.get('classname')}::{tc.get('name')}", "outcome": outcome,
                      "message": message.strip()})
    return cases


def assert_pytest_step_passed(outdir: Path, results: dict, step: str) -> list[dict]:
    """A guest pytest step passed: exit 0, at least one test, every test passed (no skip)."""
    entry = results.get(step)
    assert entry is not None, f"the guest did not run step {step!r}: {sorted(results)}"
    xml = outdir / f"{step}.xml"
    assert xml.exists(), f"{step}: no junit XML; guest output:\n{_tail(outdir / (step + '.out'))}"
    cases = junit_cases(xml)
    bad = [f"{c['name']}: {c['outcome']}\n{c['message'][-1500:]}" for c in cases if c["outcome"] != "passed"]
    assert cases, f"{step}: no test ran inside the guest"
    assert not bad, f"{step}: inside {results['facts'].get('release')}:\n" + "\n\n".join(bad)
    assert entry["returncode"] == 0, f"{step}: pytest exited {entry['returncode']}:\n{_tail(outdir / (step + '.out'))}"
    return cases


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path.name} missing)"


def run_guest(tmp_dir: Path, kernel: str, steps: str) -> tuple[Path, dict, vm.VmResult]:
    """Boot ``kernel`` once, run guest.py's ``steps``; fail (never skip) when the boot fails."""
    outdir = tmp_dir / "guest"
    outdir.mkdir()
    os.chmod(outdir, 0o777)
    result = vm.boot(f"{PY} {GUEST} {outdir} --steps {steps}", kernel=kernel, rwdirs=[outdir],
                     timeout=BOOT_TIMEOUT)
    if result.timed_out or not (outdir / "done").exists():
        pytest.fail(f"the {kernel} kernel did not run the guest suite to the end (exit {result.returncode}, "
                    f"timed out: {result.timed_out}, {result.elapsed:.0f} s). Console:\n{result.tail(60)}")
    results = {e["step"]: e for e in json.loads((outdir / "results.json").read_text())}
    return outdir, results, result


def timing_line(tier: str, boot: vm.VmResult, results: dict) -> str:
    """One line for the run's summary: the whole boot and each guest step, in seconds."""
    steps = ", ".join(f"{k} {v['step_seconds']:.0f} s" for k, v in results.items() if v.get("step_seconds") is not None)
    return f"[{tier}] {boot.kernel}: boot and guest suite {boot.elapsed:.0f} s ({steps})"


def require_vm(kernel: str) -> vm.Readiness:
    """Skip only where this machine conclusively cannot boot the VM; under CI, fail otherwise.

    `make test` runs scripts/setup_vm.sh first, so on CI's x86_64 machine a VM that is
    not ready is a broken setup (a failure), not a missing feature.
    """
    ready = vm.readiness(kernel)
    if ready.expected:
        return ready
    if os.uname().machine != "x86_64":
        pytest.skip(f"this machine is {os.uname().machine}: the second-kernel tier boots x86_64 Debian kernels only")
    if os.environ.get("EBPF_LAB_VM") == "0":
        pytest.skip(f"EBPF_LAB_VM=0: the second kernel was not set up ({ready.reason})")
    if IN_CI:
        pytest.fail(f"CI must run the second-kernel tier, but {ready.reason}. "
                    "Next step: run scripts/setup_vm.sh (make test runs it) and read its error")
    pytest.skip(ready.reason + ". Next step: make setup-vm")


# ---------------------------------------------------------------- unit: the driver's pure parts

@pytest.mark.unit
def test_stock_release_comes_from_the_headers_metapackage():
    assert vm.stock_kernel_release("linux-headers-6.1.0-56-amd64 (= 6.1.192-2)") == "6.1.0-56-amd64"
    assert vm.stock_kernel_release("foo, linux-headers-6.1.0-57-amd64 (= 6.1.200-1)") == "6.1.0-57-amd64"
    assert vm.stock_kernel_release("") is None


@pytest.mark.unit
def test_vng_command_line_disables_kvm_and_shares_result_dirs():
    argv = vm.vng_argv(Path("/boot/vmlinuz-x"), "uname -r", rwdirs=["/tmp/a"], vng="/v/vng")
    assert argv[:3] == ["/v/vng", "-r", "/boot/vmlinuz-x"]
    assert "--disable-kvm" in argv and argv[argv.index("--rwdir") + 1] == "/tmp/a"
    assert argv[-2:] == ["--", "uname -r"]


@pytest.mark.unit
def test_junit_reader_sees_failures(tmp_path):
    (tmp_path / "x.xml").write_text(
        '<testsuites><testsuite><testcase classname="a" name="ok"/>'
        '<testcase classname="a" name="bad"><failure message="boom">trace</failure></testcase>'
        '<testcase classname="a" name="sk"><skipped message="no"/></testcase></testsuite></testsuites>')
    assert [(c["name"], c["outcome"]) for c in junit_cases(tmp_path / "x.xml")] == [
        ("a::ok", "passed"), ("a::bad", "failed"), ("a::sk", "skipped")]
    with pytest.raises(AssertionError, match="a::bad: failed"):
        assert_pytest_step_passed(tmp_path, {"x": {"returncode": 1}, "facts": {"release": "r"}}, "x")


@pytest.mark.unit
def test_timing_line_names_every_step():
    boot = vm.VmResult(kernel=Path("/boot/vmlinuz-x"), command=[], returncode=0, stdout="", stderr="", elapsed=812.4)
    line = timing_line("kernel2: stock", boot, {"facts": {"step_seconds": 0.2}, "doctor": {"step_seconds": 95.6}})
    assert line == "[kernel2: stock] /boot/vmlinuz-x: boot and guest suite 812 s (facts 0 s, doctor 96 s)"


# ---------------------------------------------------------------- the stock kernel, booted once

@pytest.fixture(scope="module")
def stock(tmp_path_factory, summary_lines):
    require_vm("stock")
    started = time.monotonic()
    outdir, results, boot = run_guest(tmp_path_factory.mktemp("kernel2"), "stock", STEPS)
    timing = {"kernel": str(boot.kernel), "boot_and_suite_s": round(time.monotonic() - started, 1),
              "steps_s": {k: v.get("step_seconds") for k, v in results.items()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        TIMING_FILE.parent.mkdir(parents=True, exist_ok=True)
        TIMING_FILE.write_text(json.dumps(timing, indent=1))
    except OSError:
        pass
    summary_lines.append(timing_line("kernel2: stock", boot, results))
    return outdir, results


@pytest.mark.kernel2
def test_it_ran_inside_another_kernel(stock):
    outdir, results = stock
    inside = json.loads((outdir / "facts.json").read_text())
    assert inside["release"] != os.uname().release, "the guest reports the host's kernel: no VM ran"
    assert inside["release"] == vm.stock_kernel_release()
    assert "Debian" in inside["version"]


@pytest.mark.kernel2
def test_doctor_inside_reports_kprobe_kretprobe_fentry_and_lsm_ok(stock):
    outdir, results = stock
    assert results["doctor"]["returncode"] == 0, _tail(outdir / "doctor.out")
    rows = json.loads((outdir / "doctor.json").read_text())
    bad = {m: rows.get(m) for m in MUST_BE_OK if rows.get(m, {}).get("status") != "ok"}
    assert not bad, f"doctor inside the stock kernel: {bad}"
    # the one thing that kernel lacks (CONFIG_FUNCTION_ERROR_INJECTION) is not reported as working
    assert rows["override"]["status"] != "ok"


@pytest.mark.kernel2
def test_privileged_tests_of_kprobes_fentry_and_lsm_pass_inside(stock):
    outdir, results = stock
    cases = assert_pytest_step_passed(outdir, results, "pytest")
    names = " ".join(c["name"] for c in cases)
    for needed in ("kprobe", "kretprobe", "fentry", "lsm"):
        assert needed in names.lower(), f"no {needed} test ran inside: {names}"


def _graded(outdir: Path, name: str) -> list[dict]:
    path = outdir / f"{name}.json"
    assert path.exists(), f"no {path.name}; guest output:\n{_tail(outdir / (name + '.out'))}"
    return json.loads(path.read_text())["exercises"]


def assert_solutions_pass(outdir: Path, results: dict) -> None:
    """Every graded solution passed every check, and not on the fallback (uprobe) variant."""
    ids = results["grade"]["ids"]
    exercises = _graded(outdir, "grade_solutions")
    assert sorted(e["id"] for e in exercises) == sorted(ids) and ids
    bad = [(e["id"], c["name"], c["status"], c["message"]) for e in exercises for c in e["checks"]
           if c["status"] != "passed"]
    assert not bad, f"solutions graded inside {results['facts']['release']}: {bad}"
    for e in exercises:
        assert e["score"] == e["max_score"] > 0
        shown = " ".join(c["message"] for c in e["checks"] if not c["hidden"])
        assert "uprobe variant" not in shown, f"{e['id']} graded the fallback variant inside: {shown}"


def assert_exercise_stubs_fail(outdir: Path, results: dict) -> None:
    """Every untouched stub failed every check with a message for the learner, no crash."""
    exercises = _graded(outdir, "grade_exercises")
    assert sorted(e["id"] for e in exercises) == sorted(results["grade"]["ids"])
    for e in exercises:
        assert e["score"] == 0 and not e["error"], e
        for c in e["checks"]:
            assert c["status"] == "failed", (e["id"], c["name"], c["status"], c["message"])
            if not c["hidden"]:
                assert c["message"].strip() and "Traceback" not in c["message"], (e["id"], c["message"])


@pytest.mark.kernel2
def test_every_kprobe_fentry_lsm_solution_passes_inside(stock):
    assert_solutions_pass(*stock)


@pytest.mark.kernel2
def test_every_kprobe_fentry_lsm_stub_fails_with_its_message_inside(stock):
    assert_exercise_stubs_fail(*stock)


# the next step of NotSupportedError: printed by a notebook cell that fell back
FALLBACK = "run this on a kernel with"
# what a notebook prints when it takes the live path (checked where the notebook says it)
LIVE_SIGNS = {"03": "yes: the kprobe cells below run live", "04": "", "05": "denied=23"}


def notebook_text(path: Path) -> str:
    """Every stream and text output of an executed notebook; raises on an error output."""
    import nbformat  # noqa: PLC0415

    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            assert out.get("output_type") != "error", f"{path.name}: {out.get('ename')}: {out.get('evalue')}"
            texts.append(out.get("text", "") or out.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def assert_notebook_ran_live(outdir: Path, results: dict, number: str) -> None:
    names = [n for n in json.loads((outdir / "notebook_names.json").read_text()) if n.startswith(number + "_")]
    assert names, f"notebook {number}_*.ipynb is not in notebooks/ (yet): nothing to run inside the VM"
    for name in names:
        run = results["notebooks"]["notebooks"][name]
        assert run["returncode"] == 0, f"{name} failed inside the VM:\n{_tail(outdir / f'nb_{number}.out', 60)}"
        text = notebook_text(outdir / name)
        assert FALLBACK not in text, f"{name} fell back although the kernel has the mechanism:\n" + \
            "\n".join(ln for ln in text.splitlines() if FALLBACK in ln or "Not" in ln)[:2000]
        assert LIVE_SIGNS[number] in text, f"{name} did not print {LIVE_SIGNS[number]!r}"


@pytest.mark.kernel2
@pytest.mark.parametrize("number", ["03", "04"])
def test_notebook_runs_inside_with_the_real_mechanism(stock, number):
    outdir, results = stock
    assert_notebook_ran_live(outdir, results, number)


@pytest.mark.kernel2
def test_a_failing_check_inside_the_vm_fails_the_run(stock):
    """guest_selftest.py fails on purpose inside the guest; the same check that judges the
    real steps must see that failure (so a broken kprobe test can never pass silently)."""
    outdir, results = stock
    assert results["selftest"]["returncode"] == 1
    with pytest.raises(AssertionError, match="deliberate failure inside the guest"):
        assert_pytest_step_passed(outdir, results, "selftest")
