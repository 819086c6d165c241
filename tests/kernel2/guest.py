"""Runs INSIDE the second kernel (a QEMU guest booted by ebpf_lab.vm), as root.

Usage (the host's tests/kernel2/test_kernel2.py does this; never run it on the host):

    .venv/bin/python tests/kernel2/guest.py OUTDIR [--steps facts,doctor,...] [--kernel-name stock]

Each step runs in turn and writes what it saw to OUTDIR (a directory shared
writable with the host); OUTDIR/results.json holds one entry per step:
``{"step": ..., "returncode": ..., "seconds": ..., ...}``. A step that fails
does not stop the others: the host test reports every failure at once. The
host decides pass or fail from these files, never from the console.

Steps:
  facts       uname -r / -v inside, to prove this is another kernel
  doctor      ebpf_lab's doctor, every mechanism row, probed fresh
  pytest      the privileged tests of what the host kernel lacks (guest_tests.py
              and selected tests/test_*.py items), junit XML in OUTDIR
  grade       every kprobe/fentry/LSM exercise: solutions must pass, stubs fail
              (`ebpf-lab grade ... --solutions` and without), JSON in OUTDIR;
              grade=override: the exercises that need override()
  notebooks   notebooks 03 and 04 executed with nbclient (real mechanisms here);
              notebooks=05 (or 03+04+05) picks the chapters
  selftest    a pytest run with one deliberately failing test: the host checks
              that it is reported as failed (a failing check fails the run)
  override    (override kernel) the override() paths: tests/test_firewall.py's
              override test and guest_tests.py's override tests
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python")
HERE = Path(__file__).resolve().parent

# Items of the host's own suite that take another path on a kernel with kprobes
# (they branch on the kernel, or require_feature() a mechanism the host lacks).
HOST_SUITE_ITEMS = [
    "tests/test_bpftrace_run.py::test_kprobes_fail_cleanly_when_the_kernel_has_none",
    "tests/test_catalog.py::test_kprobes_follow_kprobe_events",
]
OVERRIDE_ITEMS = [
    "tests/test_firewall.py::test_override_mechanism_where_the_kernel_allows_it",
]
# which exercises each kernel grades: those that need what the host kernel lacks. Chapter 03's
# exercises need only uprobes, but grade their kprobe variant where kprobes work: graded too.
GRADED_HERE = {
    "stock": ({"kprobe", "kretprobe", "fentry/fexit", "LSM"}, ("kprobe",)),
    "override": ({"override"}, ()),
}

ALL_STEPS = ["facts", "doctor", "pytest", "grade", "notebooks", "selftest"]


def _env(outdir: Path) -> dict:
    """A writable environment: the host's filesystem is read-only in the guest."""
    scratch = Path("/tmp/ebpf-lab-guest")
    for sub in ("home", "cache", "jupyter", "ipython", "mpl"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "EBPF_LAB_CACHE_DIR": str(scratch / "cache"),
        "JUPYTER_RUNTIME_DIR": str(scratch / "jupyter"),
        "JUPYTER_DATA_DIR": str(ROOT / ".venv" / "share" / "jupyter"),
        "IPYTHONDIR": str(scratch / "ipython"),
        "MPLCONFIGDIR": str(scratch / "mpl"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "CI": "true",   # inside the guest the machine is ours alone: strict leak checks
        "EBPF_LAB_GUEST": "1",
        # software emulation: every bpftrace start takes tens of seconds, so the grader's time
        # limits stretch (ebpf_lab.grader.runner.time_scale); the host's values stay as they are
        "EBPF_LAB_TIME_SCALE": os.environ.get("EBPF_LAB_TIME_SCALE", "15"),
    })
    return env


def _run(argv: list[str], env: dict, outdir: Path, name: str, timeout: float = 1800) -> dict:
    started = time.monotonic()
    print(f"[guest] {name}: {' '.join(argv)}", flush=True)
    try:
        proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, errors="replace")
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = None, exc.stdout or "", f"timed out after {timeout} s"
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
    (outdir / f"{name}.out").write_text(out + "\n--- stderr ---\n" + (err or ""))
    seconds = round(time.monotonic() - started, 1)
    print(f"[guest] {name}: exit {rc} in {seconds} s", flush=True)
    return {"returncode": rc, "seconds": seconds, "argv": argv}


def step_facts(env, outdir):
    u = os.uname()
    facts = {"release": u.release, "version": u.version, "machine": u.machine,
             "proc_version": Path("/proc/version").read_text().strip()}
    (outdir / "facts.json").write_text(json.dumps(facts, indent=1))
    return {"returncode": 0, **facts}


def step_doctor(env, outdir):
    code = ("import json, sys\n"
            "from ebpf_lab import doctor\n"
            "df = doctor.report(refresh=True)\n"
            "rows = {r['check']: {c: str(r[c]) for c in df.columns} for r in df.to_dict('records')}\n"
            "json.dump(rows, open(sys.argv[1], 'w'), indent=1)\n"
            "print(doctor.render_text(df))\n")
    return _run([PY, "-c", code, str(outdir / "doctor.json")], env, outdir, "doctor", timeout=900)


def _pytest(items, env, outdir, name, timeout=2400):
    argv = [PY, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=--strict-markers",
            "-rA", "--timeout", "900", f"--junitxml={outdir / (name + '.xml')}", *items]
    return _run(argv, env, outdir, name, timeout=timeout)


def step_pytest(env, outdir):
    # override() is not in the stock kernel: its test runs in the override step, on the override kernel
    return _pytest([*HOST_SUITE_ITEMS, "tests/kernel2/guest_tests.py",
                    "--deselect", "tests/kernel2/guest_tests.py::test_override_makes_connect_fail_with_eperm"],
                   env, outdir, "pytest")


def _guest_exercises(kernel: str) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from ebpf_lab.grader import exercises  # noqa: PLC0415

    wanted, chapter_words = GRADED_HERE[kernel]
    chosen = []
    for eid, spec in exercises().items():
        needs = {n for t in spec.trials for n in t.needs}
        if needs & wanted or any(w in spec.chapter.lower() for w in chapter_words):
            chosen.append(eid)
    return sorted(chosen)


def step_grade(env, outdir, kernel="stock"):
    ids = _guest_exercises(kernel)
    (outdir / "grade_ids.json").write_text(json.dumps(ids))
    if not ids:
        return {"returncode": 1, "error": f"no exercise to grade on the {kernel} kernel"}
    sol = _run([PY, "-m", "ebpf_lab", "grade", *ids, "--solutions", "--format", "json",
                "--output", str(outdir / "grade_solutions.json")], env, outdir, "grade_solutions")
    stub = _run([PY, "-m", "ebpf_lab", "grade", *ids, "--format", "json",
                 "--output", str(outdir / "grade_exercises.json")], env, outdir, "grade_exercises")
    return {"returncode": 0, "ids": ids, "solutions": sol, "exercises": stub}


def step_notebooks(env, outdir, numbers="03+04"):
    names = sorted(os.path.basename(p) for n in numbers.split("+")
                   for p in glob.glob(str(ROOT / "notebooks" / f"{n}_*.ipynb")))
    (outdir / "notebook_names.json").write_text(json.dumps(names))
    runs = {}
    for name in names:
        code = ("import sys, nbformat\n"
                "from nbclient import NotebookClient\n"
                "nb = nbformat.read(sys.argv[1], as_version=4)\n"
                "NotebookClient(nb, kernel_name='ebpf-lab', timeout=1200, startup_timeout=900, resources={'metadata': {'path': sys.argv[3]}}).execute()\n"
                "nbformat.write(nb, sys.argv[2])\n")
        runs[name] = _run([PY, "-c", code, str(ROOT / "notebooks" / name), str(outdir / name),
                           str(ROOT / "notebooks")], env, outdir, "nb_" + name.split("_")[0], timeout=2400)
    return {"returncode": 0, "notebooks": runs}


def step_selftest(env, outdir):
    return _pytest(["tests/kernel2/guest_selftest.py"], env, outdir, "selftest")


def step_override(env, outdir):
    return _pytest([*OVERRIDE_ITEMS, "tests/kernel2/guest_tests.py::test_override_makes_connect_fail_with_eperm"],
                   env, outdir, "override")


STEPS = {"facts": step_facts, "doctor": step_doctor, "pytest": step_pytest, "grade": step_grade,
         "notebooks": step_notebooks, "selftest": step_selftest, "override": step_override}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--steps", default=",".join(ALL_STEPS))
    args = ap.parse_args()
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    env = _env(outdir)
    results = []
    for name in [s for s in args.steps.split(",") if s]:
        started = time.monotonic()
        name, _, param = name.partition("=")
        try:
            entry = STEPS[name](env, outdir, *([param] if param else []))
        except Exception as exc:  # noqa: BLE001 - recorded for the host, which fails on it
            entry = {"returncode": 1, "error": f"{type(exc).__name__}: {exc}"}
        entry = {"step": name, **entry, "step_seconds": round(time.monotonic() - started, 1)}
        results.append(entry)
        (outdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (outdir / "done").write_text("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
