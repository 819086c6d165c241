"""The lesson notebooks: committed clean, and running top to bottom on this kernel.

Unit tests check the committed .ipynb files (no outputs, built from
scripts/make_notebooks.py, the right shape). Notebook tests execute each one
with nbclient in the ``ebpf-lab`` Jupyter kernel, with real probes, from
``notebooks/`` as the working directory, and fail on any cell error, on
anything on stderr that looks like a traceback, on a notebook that draws no
plot, and on a BPF program or process left behind.
"""

from __future__ import annotations

import pytest

from nbrun import PER_NOTEBOOK_SECONDS, assert_builder_fresh, assert_committed_clean, execute, load, problems

BUILDER = "scripts/make_notebooks.py"
OURS = ["00_start_here.ipynb", "01_bpftrace_basics.ipynb", "02_tracepoints.ipynb"]
EXERCISE_IDS = {
    "01_bpftrace_basics.ipynb": [f"01.{i}" for i in range(1, 7)],
    "02_tracepoints.ipynb": [f"02.{i}" for i in range(1, 7)],
}


# ---------------------------------------------------------------- committed files (unit)

@pytest.mark.unit
@pytest.mark.parametrize("name", OURS)
def test_notebook_is_committed_without_outputs(name):
    assert_committed_clean(name, BUILDER)


@pytest.mark.unit
def test_notebooks_match_their_builder():
    assert_builder_fresh(BUILDER)


@pytest.mark.unit
@pytest.mark.parametrize("name", OURS)
def test_notebook_has_the_lesson_shape(name):
    nb = load(name)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "### What you will learn" in md
    assert "## Summary" in md
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    for ex in EXERCISE_IDS.get(name, []):
        assert f'ebpf_lab.check("{ex}")' in sources, f"{name}: no check cell for {ex}"
    if name in EXERCISE_IDS:
        assert "## Exercises" in md
    # the lesson computes the 2022 post's numbers on this kernel, side by side
    assert any("compare_with_post" in s for s in sources)
    # at least one plot, from data captured in the same run
    assert any("plots." in s for s in sources)


# ---------------------------------------------------------------- execution (notebook)

@pytest.mark.unit
def test_the_stderr_check_tells_tracebacks_from_progress_lines():
    from nbformat import v4

    nb = v4.new_notebook()
    ok = v4.new_code_cell("x")
    ok.outputs = [v4.new_output("stream", name="stderr", text="01.1 @calls is keyed by process name: failed\n"),
                  v4.new_output("stream", name="stdout", text="ValueError: printed on stdout is fine\n")]
    bad = v4.new_code_cell("y")
    bad.outputs = [v4.new_output("stream", name="stderr",
                                 text="Exception in thread Thread-3:\nTraceback (most recent call last):\n  ...\n")]
    worse = v4.new_code_cell("z")
    worse.outputs = [v4.new_output("stream", name="stderr", text="boom\nRuntimeError: the reader died\n")]
    nb.cells = [ok, bad, worse]
    found = problems(nb)
    assert [f.split(":")[0] for f in found] == ["cell 1", "cell 2"]


@pytest.mark.notebook
@pytest.mark.timeout(PER_NOTEBOOK_SECONDS)
@pytest.mark.parametrize("name", OURS)
def test_notebook_runs_top_to_bottom(name, tmp_path, no_leaks):
    execute(name, tmp_path)


# ---------------------------------------------------------------- lesson helpers (unit)

@pytest.mark.unit
def test_compare_with_post_puts_the_post_next_to_this_kernel(monkeypatch):
    from ebpf_lab import catalog, lessons
    from ebpf_lab.errors import NotSupportedError

    def fake_count(pattern):
        if pattern.startswith("kprobe"):
            raise NotSupportedError("this kernel has no kprobes", feature="kprobes")
        return {"tracepoint:*": 2305, "tracepoint:syscalls:*": 720, "tracepoint:raw_syscalls:*": 2}[pattern]

    monkeypatch.setattr(catalog, "count_probes", fake_count)
    df = lessons.compare_with_post("probes")
    assert list(df.columns) == [lessons.POST_COLUMN, "on your kernel", "note"]
    assert lessons.POST_COLUMN == "in the 2022 post (Ubuntu 22.04, 5.15)"
    assert df.loc["tracepoint:*"].tolist()[:2] == [1607, 2305]
    assert df.loc["tracepoint:syscalls:*", "on your kernel"] == 720
    assert df.loc["kprobe:*", lessons.POST_COLUMN] == 52464
    assert df["on your kernel"].isna().tolist() == [False, False, False, True]
    assert df.loc["kprobe:*", "note"] == "this kernel has no kprobes"


@pytest.mark.unit
def test_compare_with_post_rejects_an_unknown_table():
    from ebpf_lab import lessons
    from ebpf_lab.errors import UsageError

    with pytest.raises(UsageError, match="'probes', 'syscalls'"):
        lessons.compare_with_post("kfuncs")


@pytest.mark.unit
def test_hint_prints_the_next_hint_and_never_raises(tmp_path, monkeypatch, capsys):
    from ebpf_lab import lessons

    home = tmp_path / "lab"
    ex = home / "exercises" / "01_bpftrace_basics"
    ex.mkdir(parents=True)
    (home / "solutions").mkdir()
    monkeypatch.setenv("EBPF_LAB_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from ebpf_lab.grader import exercise_path, resolve
    path = exercise_path(resolve("01.1")[0], home=home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.stem + ".hints.md").write_text("first hint\n---\nsecond hint\n")
    lessons.hint("01.1")
    lessons.hint("01.1")
    out = capsys.readouterr().out
    assert "Hint 1 of 2 for 01.1:\nfirst hint" in out and "Hint 2 of 2 for 01.1:\nsecond hint" in out
    lessons.hint("99.9")
    assert capsys.readouterr().out.startswith("No hint for 99.9: no exercise or chapter named '99.9'")
