"""Unit tests of ebpf_lab.plots on synthetic DataFrames (no root, no kernel)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ebpf_lab import plots
from ebpf_lab.errors import UsageError

pytestmark = pytest.mark.unit


def _events(rows):
    """rows: (milliseconds, comm, pid, syscall) -> a trace()-shaped DataFrame."""
    t0 = 1_000_000_000_000
    return pd.DataFrame({
        "time_ns": [t0 + ms * 1_000_000 for ms, *_ in rows],
        "pid": [p for _, _, p, _ in rows],
        "tid": [p for _, _, p, _ in rows],
        "comm": [c for _, c, _, _ in rows],
        "cpu": [0] * len(rows),
        "syscall": [s for *_, s in rows],
    })


def _has_unit(label: str) -> bool:
    return "(" in label and label.rstrip().endswith(")")


def _bars(ax):
    return [p for c in ax.containers for p in c.patches]


# ---------------------------------------------------------------- bucket labels

@pytest.mark.parametrize("low, high, label", [
    (0, 0, "[0]"),
    (1, 1, "[1]"),
    (2, 3, "[2, 4)"),
    (4, 7, "[4, 8)"),
    (512, 1023, "[512, 1K)"),
    (1024, 2047, "[1K, 2K)"),
    (2048, 4095, "[2K, 4K)"),
    (1 << 20, (1 << 21) - 1, "[1M, 2M)"),
    (3 << 30, (4 << 30) - 1, "[3G, 4G)"),
    (None, -1, "(..., 0)"),
    (float("nan"), -1, "(..., 0)"),
    (100, None, "[100, ...)"),
    (0, 9, "[0, 10)"),          # lhist bucket, max included as bpftrace writes it
    (4, 8, "[4, 8)"),           # a producer that wrote the exclusive end
])
def test_bucket_label_matches_bpftrace(low, high, label):
    assert plots.bucket_label(low, high) == label


# ---------------------------------------------------------------- log2_hist

# bpftrace 0.17 `-f json` of hist() over 0, 1, 3, 5, 1500 and -3 (recorded on this machine)
BPFTRACE_HIST = pd.DataFrame([
    {"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 1}, {"min": 1, "max": 1, "count": 1},
    {"min": 2, "max": 3, "count": 1}, {"min": 4, "max": 7, "count": 1},
    {"min": 8, "max": 15, "count": 0}, {"min": 16, "max": 31, "count": 0},
    {"min": 32, "max": 63, "count": 0}, {"min": 64, "max": 127, "count": 0},
    {"min": 128, "max": 255, "count": 0}, {"min": 256, "max": 511, "count": 0},
    {"min": 512, "max": 1023, "count": 0}, {"min": 1024, "max": 2047, "count": 7},
])


def test_log2_hist_draws_one_bar_per_bucket_with_bpftrace_labels():
    fig = plots.log2_hist(BPFTRACE_HIST, unit="bytes", title="read sizes")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "read sizes"
    assert len(_bars(ax)) == len(BPFTRACE_HIST)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "(..., 0)"
    assert labels[1:5] == ["[0]", "[1]", "[2, 4)", "[4, 8)"]
    assert labels[-2:] == ["[512, 1K)", "[1K, 2K)"]
    assert ax.get_ylabel() == "bucket (bytes)"
    assert _has_unit(ax.get_xlabel())
    widths = [p.get_width() for p in _bars(ax)]
    assert widths[-1] == 7 and sum(widths) == 12
    # smallest bucket on top, as bpftrace prints it
    assert ax.yaxis_inverted()


def test_log2_hist_sorts_buckets_given_out_of_order():
    shuffled = BPFTRACE_HIST.sample(frac=1, random_state=3)
    labels = [t.get_text() for t in plots.log2_hist(shuffled).axes[0].get_yticklabels()]
    assert labels == [plots.bucket_label(r.get("min"), r["max"])
                      for r in BPFTRACE_HIST.to_dict("records")]


def test_log2_hist_takes_nullable_integer_bounds_as_the_bpftrace_parser_gives():
    hist = pd.DataFrame({
        "min": pd.array([None, 0, 1, 2, 1024], dtype="Int64"),
        "max": pd.array([-1, 0, 1, 3, 2047], dtype="Int64"),
        "count": [2, 3, 5, 7, 11],
    })
    ax = plots.log2_hist(hist).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:5] == ["(..., 0)", "[0]", "[1]", "[2, 4)", "[4, 8)"]
    assert labels[-2:] == ["[512, 1K)", "[1K, 2K)"] and len(labels) == 13
    assert [p.get_width() for p in _bars(ax)] == [2, 3, 5, 7] + [0] * 8 + [11]


def test_log2_hist_of_a_keyed_bpftrace_histogram_draws_one_panel_per_key():
    hist = pd.DataFrame({"comm": ["cat", "cat", "ls"], "min": [4, 8, 4], "max": [7, 15, 7],
                         "count": [1, 2, 9]})
    fig = plots.log2_hist(hist, unit="bytes")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["ls", "cat"]
    ax = plots.log2_hist(hist, syscall="cat").axes[0]
    assert len(_bars(ax)) == 2 and ax.get_ylabel() == "bucket (ns)"


def test_log2_hist_draws_the_empty_buckets_between_filled_ones():
    sparse = pd.DataFrame({"min": [1, 4, 64], "max": [1, 7, 127], "count": [3, 5, 2]})
    ax = plots.log2_hist(sparse).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "[1]", "[2, 4)", "[4, 8)", "[8, 16)", "[16, 32)", "[32, 64)", "[64, 128)"]
    assert [p.get_width() for p in _bars(ax)] == [3, 0, 5, 0, 0, 0, 2]
    # a linear histogram keeps its own buckets
    linear = pd.DataFrame({"min": [0, 20], "max": [9, 29], "count": [1, 2]})
    assert [t.get_text() for t in plots.log2_hist(linear).axes[0].get_yticklabels()] == ["[0, 10)", "[20, 30)"]


def _latency():
    rows = []
    for name, buckets in (("read", [(256, 511, 5), (512, 1023, 11)]),
                          ("openat", [(1024, 2047, 2), (2048, 4095, 3), (4096, 8191, 1)]),
                          ("close", [(128, 255, 4)])):
        rows += [{"syscall": name, "min": lo, "max": hi, "count": c} for lo, hi, c in buckets]
    return pd.DataFrame(rows)


def test_log2_hist_one_syscall_of_a_latency_table():
    fig = plots.log2_hist(_latency(), syscall="openat")
    ax = fig.axes[0]
    assert "openat" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["[1K, 2K)", "[2K, 4K)", "[4K, 8K)"]
    assert ax.get_ylabel() == "bucket (ns)"


def test_log2_hist_one_panel_per_syscall_busiest_first():
    fig = plots.log2_hist(_latency())
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["read", "openat", "close"]
    assert [len(_bars(ax)) for ax in visible] == [2, 3, 1]
    assert fig._suptitle is not None and fig._suptitle.get_text()


def test_log2_hist_errors_say_what_to_do():
    with pytest.raises(UsageError, match="no column 'count'"):
        plots.log2_hist(pd.DataFrame({"min": [1], "max": [1]}))
    with pytest.raises(UsageError, match="choose one of"):
        plots.log2_hist(_latency(), syscall="write")
    import matplotlib.pyplot as plt
    _, ax = plt.subplots()
    plt.close("all")
    with pytest.raises(UsageError, match="one ax was given"):
        plots.log2_hist(_latency(), ax=ax)


# ---------------------------------------------------------------- top_syscalls

def _counts():
    return pd.DataFrame({
        "syscall": ["read", "openat", "close", "mmap", "write", "fstat", "brk", "getppid",
                    "exit_group", "execve", "munmap", "lseek"],
        "count": [230, 29, 31, 17, 13, 11, 7, 5, 1, 1, 3, 2],
        "errors": [0, 23, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    })


def test_top_syscalls_draws_n_bars_busiest_on_top():
    fig = plots.top_syscalls(_counts(), n=5)
    ax = fig.axes[0]
    assert ax.get_title() == "Top 5 syscalls by calls"
    assert _has_unit(ax.get_xlabel())
    calls = ax.containers[0]
    assert len(calls.patches) == 5
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[::-1] == ["read", "close", "openat", "mmap", "write"]
    assert sorted(p.get_width() for p in calls.patches) == [13, 17, 29, 31, 230]
    # openat's 23 errors are drawn as a second bar series
    errors = ax.containers[1]
    assert max(p.get_width() for p in errors.patches) == 23


def test_top_syscalls_sums_rows_per_syscall_and_handles_no_errors_column():
    by_comm = pd.DataFrame({"syscall": ["read", "read", "close"], "comm": ["a", "b", "a"],
                            "count": [3, 4, 2]})
    ax = plots.top_syscalls(by_comm).axes[0]
    assert len(ax.containers) == 1
    assert sorted(p.get_width() for p in ax.containers[0].patches) == [2, 7]


def test_top_syscalls_draws_into_a_given_axes():
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2)
    plt.close(fig)
    assert plots.top_syscalls(_counts(), n=3, ax=right) is fig
    assert len(right.containers[0].patches) == 3 and not left.containers


# ---------------------------------------------------------------- syscall_rate

def test_syscall_rate_one_line_per_comm_with_rates_per_second():
    rows = [(i * 10, "cat", 11, "read") for i in range(50)]             # 0 .. 490 ms
    rows += [(500 + i * 50, "labload", 23, "openat") for i in range(10)]  # 500 .. 950 ms
    fig = plots.syscall_rate(_events(rows), bin="100ms")
    ax = fig.axes[0]
    assert ax.get_title() == "Syscall rate by comm (100 ms bins)"
    assert ax.get_xlabel() == "time since first event (ms)"
    assert _has_unit(ax.get_ylabel())
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"cat (50)", "labload (10)"}
    cat = lines["cat (50)"].get_ydata()
    # 10 events per 100 ms bin = 100 events/s, for the first five bins
    assert list(cat[:5]) == [100.0] * 5 and list(cat[5:]) == [0.0] * (len(cat) - 5)
    assert len(cat) == 10 + 1  # ten 100 ms bins, and the end point of the last step
    assert list(lines["cat (50)"].get_xdata()[:3]) == [0, 100, 200]  # in ms
    assert lines["labload (10)"].get_ydata()[:-1].sum() * 0.1 == pytest.approx(10)


def test_syscall_rate_accepts_time_column_and_other_groups():
    rows = [(i * 300, f"p{i % 4}", i % 4, "read") for i in range(12)]
    df = _events(rows).drop(columns="time_ns")
    df["time"] = pd.to_datetime(1_700_000_000, unit="s") + pd.to_timedelta([r[0] for r in rows], unit="ms")
    ax = plots.syscall_rate(df, by="pid", bin="1s", top=2).axes[0]
    labels = sorted(ln.get_label() for ln in ax.get_lines())
    assert len(labels) == 3 and any(lbl.startswith("other (6)") for lbl in labels)
    assert "1 s bins" in ax.get_title()


@pytest.mark.parametrize("last_ms, unit", [(3000, "s"), (1999, "ms"), (2, "ms"), (1, "µs")])
def test_time_axis_unit_follows_the_span(last_ms, unit):
    ev = _events([(0, "a", 1, "read"), (last_ms, "a", 1, "read")])
    width = f"{max(last_ms, 1) * 10}us"  # about a hundred bins
    for fig in (plots.syscall_rate(ev, bin=width), plots.syscall_heatmap(ev, bin=width)):
        assert fig.axes[0].get_xlabel() == f"time since first event ({unit})"


def test_syscall_rate_rejects_a_bad_bin_and_a_wrong_frame():
    with pytest.raises(UsageError, match="not a time span"):
        plots.syscall_rate(_events([(0, "a", 1, "read")]), bin="soon")
    with pytest.raises(UsageError, match="neither a 'time_ns' nor a 'time'"):
        plots.syscall_rate(pd.DataFrame({"comm": ["a"]}))
    with pytest.raises(UsageError, match="needs a pandas DataFrame"):
        plots.syscall_rate([1, 2, 3])


def test_too_many_bins_is_refused_with_a_wider_bin_to_try():
    ev = _events([(0, "a", 1, "read"), (5000, "a", 1, "read")])
    with pytest.raises(UsageError, match='5 s of events into 5,000,001 bins') as err:
        plots.syscall_heatmap(ev, bin="1us")
    assert 'bin="25ms"' in str(err.value)
    # the suggestion works
    assert plots.syscall_rate(ev, bin="25ms").axes[0].get_lines()


def test_syscall_rate_of_no_events_is_an_empty_labelled_figure():
    fig = plots.syscall_rate(_events([]))
    assert fig.axes[0].get_title() and not fig.axes[0].get_lines()


# ---------------------------------------------------------------- syscall_heatmap

def test_syscall_heatmap_rows_are_the_top_syscalls_and_cells_count_calls():
    rows = [(i * 10, "cat", 11, "read") for i in range(30)]              # 0 .. 290 ms
    rows += [(200 + i * 10, "cat", 11, "openat") for i in range(20)]     # 200 .. 390 ms
    rows += [(50, "cat", 11, "close"), (350, "cat", 11, "close"), (360, "cat", 11, "brk")]
    fig = plots.syscall_heatmap(_events(rows), bin="100ms", top=3)
    ax = fig.axes[0]
    assert ax.get_title() == "Syscalls over time (100 ms bins)"
    assert ax.get_xlabel() == "time since first event (ms)"
    assert ax.images[0].get_extent()[:2] == [0, 400]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["read", "openat", "close"]
    grid = ax.images[0].get_array().filled(0)
    assert grid.shape == (3, 4)
    assert list(grid[0]) == [10, 10, 10, 0]
    assert list(grid[1]) == [0, 0, 10, 10]
    assert list(grid[2]) == [1, 0, 0, 1]
    colorbar = fig.axes[1]
    assert _has_unit(colorbar.get_ylabel())


def test_syscall_heatmap_names_numbers_or_keeps_them():
    df = _events([(0, "a", 1, "x"), (10, "a", 1, "x")]).drop(columns="syscall")
    df["id"] = [0, 987654]
    ax = plots.syscall_heatmap(df, names={0: "read"}).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["read", "#987654"]
    ax = plots.syscall_heatmap(df, names=lambda nr: "write" if nr == 1 else None).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["#0", "#987654"]
    with pytest.raises(UsageError, match="no syscall column"):
        plots.syscall_heatmap(df.drop(columns="id"))


def test_every_plot_closes_its_figure_in_pyplot():
    import matplotlib.pyplot as plt
    plt.close("all")
    plots.top_syscalls(_counts())
    plots.log2_hist(_latency())
    plots.syscall_rate(_events([(0, "a", 1, "read")]))
    plots.syscall_heatmap(_events([(0, "a", 1, "read")]))
    assert plt.get_fignums() == []


def test_module_is_pure_and_exports_what_it_documents():
    assert sorted(plots.__all__) == plots.__all__
    for name in plots.__all__:
        assert getattr(plots, name).__doc__
    assert np is not None
