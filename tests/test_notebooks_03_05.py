"""Lessons 03-05 (kprobes, BTF, override): committed clean, honest about the kernel,
running top to bottom, and their exercises graded for what they are.

Unit tests check the committed notebooks (no outputs, built from
scripts/make_notebooks_03_05.py, the lesson shape, a check cell per exercise,
other kernels' output only through ``ebpf_lab.recorded``), and that each chapter
has at least five exercises. Notebook tests execute each notebook with nbclient
in the ``ebpf-lab`` kernel from ``notebooks/``. Exercise tests grade WRONG
answers, to prove the checks catch the mistakes they are written for (the
solutions and untouched stubs are covered by tests/test_exercises.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nbrun import NOTEBOOKS, PER_NOTEBOOK_SECONDS, ROOT, assert_builder_fresh, assert_committed_clean, execute, load, \
    texts

BUILDER = "scripts/make_notebooks_03_05.py"
OURS = {
    "03_kprobes.ipynb": ("03_kprobes", [f"03.{i}" for i in range(1, 6)]),
    "04_btf.ipynb": ("04_btf", [f"04.{i}" for i in range(1, 6)]),
    "05_override.ipynb": ("05_override", [f"05.{i}" for i in range(1, 8)]),
}


# ---------------------------------------------------------------- committed files (unit)

@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(OURS))
def test_notebook_is_committed_without_outputs(name):
    assert_committed_clean(name, BUILDER)


@pytest.mark.unit
def test_notebooks_match_their_builder():
    assert_builder_fresh(BUILDER)


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(OURS))
def test_notebook_has_the_lesson_shape(name):
    nb = load(name)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for heading in ("### What you will learn", "## Summary", "## Exercises"):
        assert heading in md
    for ex in OURS[name][1]:
        assert f'ebpf_lab.check("{ex}")' in sources, f"{name}: no check cell for {ex}"
    assert any("ebpf_lab.doctor()" in s for s in sources), "each lesson asks doctor what the kernel supports"
    assert any(".plot" in s or "plots." in s for s in sources), "each lesson draws a plot from live data"


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(OURS))
def test_other_kernels_output_appears_only_through_recorded(name):
    """Recordings are shown by name through recorded.show (labelled), and every name exists."""
    from ebpf_lab import recorded

    code = "\n".join(c.source for c in load(name).cells if c.cell_type == "code")
    shown = re.findall(r'recorded\.show\("([^"]+)"\)', code)
    assert shown, f"{name} shows no recording"
    missing = [n for n in shown if n not in recorded.available(NOTEBOOKS / "recorded")]
    assert not missing, f"{name} shows recordings that do not exist: {missing} (run scripts/record_kprobes.sh)"
    # a kernel version typed into a code cell would be an unlabelled claim
    assert not re.search(r"6\.1\.0-\d+-amd64", code)


@pytest.mark.unit
def test_each_chapter_has_at_least_five_exercises_with_both_kprobe_and_uprobe_variants():
    from ebpf_lab.grader import exercises
    from ebpf_lab.grader.home import read_header

    specs = exercises()
    for chapter, ids in OURS.values():
        assert sum(s.chapter == chapter for s in specs.values()) >= 5
        assert all(i in specs for i in ids)
    for i in OURS["03_kprobes.ipynb"][1]:
        path = ROOT / "exercises" / specs[i].relpath()
        text = path.read_text()
        assert "Variants" in text and "kprobe" in text.lower() and "uprobe" in text.lower()
        assert read_header(path)["needs"] == "uprobe, uretprobe"


# ---------------------------------------------------------------- execution (notebook)

@pytest.mark.notebook
@pytest.mark.timeout(PER_NOTEBOOK_SECONDS + 30)
@pytest.mark.parametrize("name", sorted(OURS))
def test_notebook_runs_top_to_bottom(name, tmp_path, no_leaks):
    from ebpf_lab.doctor import supports

    nb = execute(name, tmp_path)
    text = texts(nb)
    assert "not from your kernel" in text, "recordings are shown with their label"
    if name == "03_kprobes.ipynb" and not supports("kprobe"):
        assert "graded the uprobe variant" in text or "uprobe variant" in text
    if name == "05_override.ipynb":
        assert "denied=23" in text and "-9" in text   # blocked in the cgroup, killed by the kill switch


# ---------------------------------------------------------------- wrong answers fail (exercises)

def _grade(exercise_id: str, source: str, tmp_path: Path, filename: str | None = None):
    from ebpf_lab.grader import exercises
    from ebpf_lab.grader.framework import grade_exercise

    spec = exercises()[exercise_id]
    path = tmp_path / spec.filename
    path.write_text(source)
    return grade_exercise(spec, path)


@pytest.mark.exercises
@pytest.mark.usefixtures("no_leaks")
def test_03_2_without_a_comm_filter_counts_the_neighbour_and_fails(tmp_path):
    solution = (ROOT / "solutions" / "03_kprobes" / "03.2_failed_returns.py").read_text()
    wrong = solution.replace("/comm == str($1) && (int64)retval == -1/", "/(int64)retval == -1/")
    assert wrong != solution
    result = _grade("03.2", wrong, tmp_path)
    graded = [c for c in result.checks if c.status != "skipped"]
    assert graded and not any(c.passed for c in graded)
    assert "uprobe variant" in graded[0].message or "kprobe variant" in graded[0].message


@pytest.mark.exercises
@pytest.mark.usefixtures("no_leaks")
def test_03_5_at_the_entry_instead_of_the_errno_path_fails(tmp_path):
    solution = (ROOT / "solutions" / "03_kprobes" / "03.5_offset.py").read_text()
    wrong = solution.replace("[errno_path_offset()]", "[0]")
    assert wrong != solution
    result = _grade("03.5", wrong, tmp_path)
    if all(c.status == "skipped" for c in result.checks):
        pytest.skip("this kernel lacks uprobes")
    assert result.checks[0].status == "failed"
    assert re.search(r"failed syscall\(\) calls|getppid", result.checks[0].message)


@pytest.mark.exercises
@pytest.mark.usefixtures("no_leaks")
def test_04_1_bit_offsets_instead_of_bytes_fail_against_bpftool(tmp_path):
    solution = (ROOT / "solutions" / "04_btf" / "04.1_field_offset.py").read_text()
    wrong = solution.replace('"offset"].iloc[0]', '"bit_offset"].iloc[0]')
    assert wrong != solution
    result = _grade("04.1", wrong, tmp_path)
    assert not any(c.passed for c in result.checks)
    assert "bpftool says" in result.checks[0].message


@pytest.mark.exercises
@pytest.mark.usefixtures("no_leaks")
def test_05_2_blocking_the_port_for_everyone_fails_the_other_process_check(tmp_path):
    solution = (ROOT / "solutions" / "05_override" / "05.2_block_comm_port.py").read_text()
    wrong = solution.replace("ConnectRule(comm=comm, port=port)", "ConnectRule(port=port)")
    assert wrong != solution
    result = _grade("05.2", wrong, tmp_path)
    blocked, allowed = result.checks
    assert blocked.passed, blocked.message       # the named process is blocked either way
    assert allowed.status == "failed" and "to go through" in allowed.message


@pytest.mark.exercises
@pytest.mark.usefixtures("no_leaks")
def test_05_5_two_loose_rules_in_an_allow_list_fail(tmp_path):
    solution = (ROOT / "solutions" / "05_override" / "05.5_allow_comm.py").read_text()
    wrong = solution.replace("[ConnectRule(comm=comm, port=port)]", "[ConnectRule(comm=comm), ConnectRule(port=port)]")
    assert wrong != solution
    result = _grade("05.5", wrong, tmp_path)
    assert result.checks[0].status == "failed" and "to be blocked" in result.checks[0].message
