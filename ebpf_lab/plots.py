"""Plots of syscall activity, drawn from the lab's DataFrames.

Each function takes a DataFrame the lab returned, draws one picture with
matplotlib and returns the :class:`matplotlib.figure.Figure`. Pass ``ax=`` to
draw into an axes of your own (a subplot grid, say); otherwise a new figure is
made. Nothing here touches the kernel, so the functions work on saved data too::

    >>> df = ebpf_lab.trace("tracepoint:raw_syscalls:sys_enter", ["id"],
    ...                     command="cat /etc/hosts")               # doctest: +SKIP
    >>> plots.syscall_rate(df)                                     # doctest: +SKIP

=====================  ===============================================  ==========================
function               draws                                            from
=====================  ===============================================  ==========================
``syscall_rate``       events per second over time, one line per group  ``trace()``
``top_syscalls``       the busiest syscalls as horizontal bars          ``syscall_counts()``
``log2_hist``          a power-of-two histogram, the way bpftrace       ``BpftraceResult.hists``,
                       prints one (``[4, 8)``, ``[1K, 2K)``)             ``syscall_latency()``
``syscall_heatmap``    which syscalls ran when (colour = calls per bin) ``trace()`` of raw syscalls
=====================  ===============================================  ==========================

Figures are closed in pyplot right after they are drawn: a notebook shows the
returned figure exactly once, and scripts using the Agg backend never pile up
open figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import UsageError

__all__ = ["bucket_label", "log2_hist", "syscall_heatmap", "syscall_rate", "top_syscalls"]

_FIGSIZE = (9.0, 4.8)
_TITLE_SIZE = 13
_LABEL_SIZE = 11


# --------------------------------------------------------------------------- helpers

def _new_axes(ax, figsize=_FIGSIZE):
    """Return (figure, axes): the caller's axes, or a fresh figure closed in pyplot."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, new_ax = plt.subplots(figsize=figsize)
    plt.close(fig)  # returned, not shown twice; no pile-up under Agg
    return fig, new_ax


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=_TITLE_SIZE)
    ax.set_xlabel(xlabel, fontsize=_LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=_LABEL_SIZE)
    ax.tick_params(labelsize=9)


def _integer_ticks(axis) -> None:
    """Counts are whole numbers: no 0.25 ticks on a count axis."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _require(df: Any, columns: tuple[str, ...], what: str, producer: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise UsageError(
            f"{what} needs a pandas DataFrame, got {type(df).__name__}",
            cause=f"the argument is not a DataFrame from {producer}",
            next_step=f"pass the DataFrame that {producer} returned",
        )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UsageError(
            f"{what}: the DataFrame has no column {', '.join(repr(m) for m in missing)} "
            f"(it has {', '.join(map(repr, df.columns)) or 'no columns'})",
            cause=f"this is not the shape {producer} returns",
            next_step=f"pass the DataFrame from {producer}, or rename your columns to "
                      f"{', '.join(columns)}",
        )
    return df


def _bin_seconds(bin: Any) -> float:
    """A bin width such as ``"100ms"``, ``"1s"``, a Timedelta, or seconds as a number."""
    try:
        if isinstance(bin, (int, float, np.integer, np.floating)) and not isinstance(bin, bool):
            seconds = float(bin)
        else:
            seconds = pd.to_timedelta(bin).total_seconds()
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"bin={bin!r} is not a time span",
            cause=str(exc),
            next_step='use a string such as "10ms", "100ms" or "1s", or a number of seconds',
        ) from None
    if not seconds > 0:
        raise UsageError(f"bin={bin!r} is not a positive time span",
                         next_step='use a string such as "100ms" or "1s"')
    return seconds


def _bin_text(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)} s"
    ms = seconds * 1e3
    if ms >= 1:
        return f"{ms:g} ms"
    return f"{seconds * 1e6:g} µs"


def _elapsed_ns(events: pd.DataFrame, what: str) -> np.ndarray:
    """Event times as integer nanoseconds since the first event (from ``time_ns`` or ``time``).

    Integers, so that an event exactly on a bin edge always lands in the later bin.
    """
    if "time_ns" in events.columns:
        ns = pd.to_numeric(events["time_ns"], errors="coerce").to_numpy(dtype="float64")
    elif "time" in events.columns:
        t = events["time"]
        if pd.api.types.is_datetime64_any_dtype(t) or pd.api.types.is_timedelta64_dtype(t):
            ns = (t - t.min()).dt.total_seconds().to_numpy(dtype="float64") * 1e9
        else:  # seconds as numbers
            ns = pd.to_numeric(t, errors="coerce").to_numpy(dtype="float64") * 1e9
    else:
        raise UsageError(
            f"{what}: the events have neither a 'time_ns' nor a 'time' column",
            cause="this is not a DataFrame from ebpf_lab.trace()",
            next_step="pass the DataFrame that ebpf_lab.trace(...) returned",
        )
    if len(ns) == 0:
        return np.zeros(0, dtype="int64")
    ns = np.nan_to_num(ns, nan=np.nanmin(ns) if not np.isnan(ns).all() else 0.0)
    return np.rint(ns - ns.min()).astype("int64")


def _time_unit(elapsed_ns: np.ndarray) -> tuple[float, str]:
    """(seconds per axis unit, unit name) that suit the span: s, ms or µs."""
    span = float(elapsed_ns.max()) / 1e9 if len(elapsed_ns) else 0.0
    if span >= 2:
        return 1.0, "s"
    if span >= 2e-3:
        return 1e-3, "ms"
    return 1e-6, "µs"


MAX_BINS = 20_000


def _bin_index(elapsed_ns: np.ndarray, width: float) -> tuple[np.ndarray, int]:
    """(bin of every event, number of bins) for bins ``width`` seconds wide."""
    width_ns = max(1, int(round(width * 1e9)))
    idx = elapsed_ns // width_ns
    nbins = int(idx.max()) + 1 if len(idx) else 1
    if nbins > MAX_BINS:
        span = float(elapsed_ns.max()) / 1e9
        raise UsageError(
            f"bin={_bin_text(width)} cuts {span:.3g} s of events into {nbins:,} bins",
            cause=f"that is more than {MAX_BINS:,} columns: too many to draw or to see",
            next_step=f'use a wider bin, for example bin="{_bin_text(span / 200).replace(" ", "").replace("µ", "u")}"',
        )
    return idx, nbins


def _syscall_names(events: pd.DataFrame, column: str | None, names=None) -> pd.Series:
    """The syscall of every event as a name (numbers are looked up on this kernel)."""
    if column is None:
        for candidate in ("syscall", "name", "id", "nr", "syscall_nr"):
            if candidate in events.columns:
                column = candidate
                break
        else:
            raise UsageError(
                "syscall_heatmap: the events have no syscall column "
                f"(looked for 'syscall', 'name', 'id', 'nr'; have {', '.join(map(repr, events.columns))})",
                cause="the probe did not record which syscall ran",
                next_step="trace 'tracepoint:raw_syscalls:sys_enter' with fields=['id'], "
                          "or pass column='...' naming the syscall column",
            )
    elif column not in events.columns:
        raise UsageError(f"syscall_heatmap: no column {column!r} in the events",
                         next_step=f"use one of {', '.join(map(repr, events.columns))}")
    col = events[column]
    if not pd.api.types.is_numeric_dtype(col):
        return col.astype(str)
    numbers = col.astype("int64")
    if names is None:
        try:  # floor 2: reads the running kernel's syscall table; plots stay usable without it
            from .syscalls import syscall_name as names
        except ImportError:
            names = {}
    lookup = names.get if isinstance(names, dict) else names
    labels: dict[int, str] = {}
    for nr in numbers.unique():
        try:
            label = lookup(int(nr))
        except Exception:  # noqa: BLE001 - an unknown number keeps its number as label
            label = None
        labels[int(nr)] = str(label) if label else f"#{int(nr)}"
    return numbers.map(labels)


# --------------------------------------------------------------------------- bucket labels

_SUFFIXES = ["", "K", "M", "G", "T", "P", "E"]


def _size_text(value: int) -> str:
    """bpftrace's way of writing a bucket bound: 512, 1K, 2K, ..., 1M (powers of 1024)."""
    value = int(value)
    if value == 0:
        return "0"
    i = 0
    while i < len(_SUFFIXES) - 1 and value % 1024 == 0:
        value //= 1024
        i += 1
    return f"{value}{_SUFFIXES[i]}"


def _is_pow2(n: float) -> bool:
    n = int(n)
    return n > 0 and n & (n - 1) == 0


def bucket_label(low: float | None, high: float | None) -> str:
    """Label one histogram bucket the way bpftrace prints it.

    ``low`` and ``high`` are the bucket's smallest and largest value, both
    included (bpftrace's ``-f json`` writes buckets this way: ``min 4, max 7``).
    A missing bound (``None`` or NaN) is an open end::

        >>> bucket_label(4, 7), bucket_label(1024, 2047), bucket_label(1, 1)
        ('[4, 8)', '[1K, 2K)', '[1]')
        >>> bucket_label(None, -1), bucket_label(100, None)
        ('(..., 0)', '[100, ...)')
    """
    lo_missing = low is None or bool(pd.isna(low))
    hi_missing = high is None or bool(pd.isna(high))
    if lo_missing and hi_missing:
        return "[...]"
    if lo_missing:
        return f"(..., {_size_text(int(high) + 1)})"
    if hi_missing:
        return f"[{_size_text(int(low))}, ...)"
    low, high = int(low), int(high)
    if low == high:
        return f"[{_size_text(low)}]"
    # bpftrace's inclusive maximum (7 for [4, 8)); a producer that already wrote the
    # exclusive end (8 for [4, 8)) is recognised by its power-of-two upper bound.
    end = high if (_is_pow2(high) and not _is_pow2(high + 1) and _is_pow2(low)) else high + 1
    return f"[{_size_text(low)}, {_size_text(end)})"


# --------------------------------------------------------------------------- the plots

def syscall_rate(events: pd.DataFrame, by: str = "comm", bin: Any = "100ms", *,
                 ax=None, top: int = 8, title: str | None = None):
    """Syscalls per second over time, one line per process (or per ``by`` value).

    ``events`` is a DataFrame from :func:`ebpf_lab.trace` (columns ``time_ns``
    or ``time``, and ``comm``/``pid``): every row counts as one event. Time is
    cut into bins of ``bin`` (``"10ms"``, ``"100ms"``, ``"1s"``...) and each
    bin's count is divided by its width, so the y axis reads "events per
    second" whatever the bin. Only the ``top`` busiest groups get a line; the
    rest are summed into ``"other"``.

    Returns the matplotlib Figure.
    """
    _require(events, (by,), "syscall_rate", "ebpf_lab.trace()")
    width = _bin_seconds(bin)
    fig, ax = _new_axes(ax)
    elapsed = _elapsed_ns(events, "syscall_rate")
    scale, unit = _time_unit(elapsed)
    _style(ax, title or f"Syscall rate by {by} ({_bin_text(width)} bins)",
           f"time since first event ({unit})", "events per second (events/s)")
    if events.empty:
        ax.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax.transAxes)
        return fig
    groups = events[by].astype(str)
    order = groups.value_counts()
    keep = list(order.index[:top])
    groups = groups.where(groups.isin(keep), "other")
    if len(order) > top:
        keep.append("other")
    idx, nbins = _bin_index(elapsed, width)
    edges = np.arange(nbins) * width / scale
    for group in keep:
        counts = np.bincount(idx[(groups == group).to_numpy()], minlength=nbins)
        rate = counts / width
        # the last point repeats the last bin so that its step is drawn to the end
        ax.step(np.append(edges, nbins * width / scale), np.append(rate, rate[-1]), where="post",
                label=f"{group} ({int(counts.sum())})", linewidth=1.6)
    ax.set_xlim(0, max(nbins, 1) * width / scale)
    ax.set_ylim(bottom=0)
    from matplotlib.ticker import EngFormatter

    ax.yaxis.set_major_formatter(EngFormatter(sep=""))  # 1.5M, not an offset "1e6"
    ax.grid(alpha=0.3)
    ax.legend(title=f"{by} (events)", fontsize=9, title_fontsize=9, loc="best")
    fig.tight_layout()
    return fig


def top_syscalls(counts: pd.DataFrame, n: int = 10, *, ax=None, title: str | None = None):
    """The ``n`` busiest syscalls as horizontal bars, busiest on top.

    ``counts`` is a DataFrame from :func:`ebpf_lab.syscall_counts` (columns
    ``syscall``, ``count`` and, optionally, ``errors``: calls that returned an
    error). Errors are drawn as a darker bar inside each call bar, so you can
    see at a glance which syscalls failed and how often. Each bar is labelled
    with its count. If ``counts`` has several rows per syscall (``by="comm"``),
    they are summed.

    Returns the matplotlib Figure.
    """
    _require(counts, ("syscall", "count"), "top_syscalls", "ebpf_lab.syscall_counts()")
    cols = ["count"] + (["errors"] if "errors" in counts.columns else [])
    table = counts.groupby("syscall", sort=False)[cols].sum()
    table = table.sort_values("count", ascending=False).head(max(int(n), 1))
    shown = table.iloc[::-1]  # barh draws bottom-up: busiest on top
    fig, ax = _new_axes(ax, figsize=(9.0, max(2.5, 0.45 * len(shown) + 1.5)))
    _style(ax, title or f"Top {len(table)} syscalls by calls", "calls (count)", "syscall")
    if table.empty:
        ax.text(0.5, 0.5, "no syscalls", ha="center", va="center", transform=ax.transAxes)
        return fig
    y = np.arange(len(shown))
    bars = ax.barh(y, shown["count"], color="tab:blue", label="calls")
    if "errors" in shown.columns and shown["errors"].sum() > 0:
        ax.barh(y, shown["errors"], height=0.45, color="tab:red", label="errors (returned < 0)")
    ax.set_yticks(y, [str(s) for s in shown.index])
    errors = shown["errors"] if "errors" in shown.columns else pd.Series(0, index=shown.index)
    ax.bar_label(bars, padding=3, fontsize=9,
                 labels=[f"{int(c):,}" + (f" ({int(e):,} failed)" if e else "")
                         for c, e in zip(shown["count"], errors)])
    ax.set_xlim(0, shown["count"].max() * 1.3 + 1)
    ax.grid(axis="x", alpha=0.3)
    _integer_ticks(ax.xaxis)
    ax.legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    return fig


def log2_hist(hist: pd.DataFrame, *, syscall: str | None = None, unit: str = "ns",
              ax=None, title: str | None = None):
    """A power-of-two histogram drawn the way bpftrace prints ``hist()``.

    ``hist`` has one row per bucket with ``min`` (smallest value in the
    bucket), ``max`` (largest value, included) and ``count``: the shape of
    ``BpftraceResult.hists["@name"]`` and of :func:`ebpf_lab.syscall_latency`.
    Buckets run top to bottom, smallest first, as horizontal bars labelled
    ``[4, 8)``, ``[1K, 2K)``... (``K`` = 1024, like bpftrace); empty
    power-of-two buckets between filled ones are drawn as zero, as bpftrace
    prints them. ``unit`` names
    what was measured (``"ns"`` for latencies, ``"bytes"`` for sizes).

    ``syscall_latency()`` adds a ``syscall`` column (and a keyed bpftrace
    histogram such as ``@us[comm] = hist(...)`` a key column): choose one
    histogram with ``syscall="read"`` (a value of that column), or leave it out
    to get one panel each (at most six, the busiest).

    Returns the matplotlib Figure.
    """
    _require(hist, ("min", "max", "count"), "log2_hist",
             "BpftraceResult.hists[...] or ebpf_lab.syscall_latency()")
    keys = [c for c in hist.columns if c not in ("min", "max", "count")]
    key = "syscall" if "syscall" in keys else (keys[0] if len(keys) == 1 else None)
    if len(keys) > 1 and key is None:
        raise UsageError(f"log2_hist: the histogram has several key columns {keys}",
                         next_step="select the rows of one histogram first, e.g. "
                                   f"hist[hist[{keys[0]!r}] == ...][['min', 'max', 'count']]")
    if key is not None:
        names = list(hist.groupby(key, sort=False)["count"].sum()
                     .sort_values(ascending=False).index)
        if syscall is not None:
            if syscall not in names:
                raise UsageError(f"log2_hist: no {key} {syscall!r} in the histogram",
                                 next_step=f"choose one of {', '.join(map(repr, names))}")
            names = [syscall]
        if len(names) > 1:
            if ax is not None:
                raise UsageError(
                    f"log2_hist: the histogram holds {len(names)} histograms (one per {key}) "
                    "but one ax was given",
                    next_step=f"pass syscall='...' to draw the histogram of one {key}, or leave "
                              "ax out to get one panel each")
            return _hist_panels(hist, key, names[:6], unit, title)
        if names:
            hist = hist[hist[key] == names[0]]
            title = title or f"{names[0]}: {'latency ' if unit == 'ns' else ''}histogram ({unit})"
    elif syscall is not None:
        raise UsageError("log2_hist: syscall= was given but the histogram has no key column",
                         next_step="leave syscall out")
    fig, ax = _new_axes(ax, figsize=(9.0, max(2.5, 0.32 * len(hist) + 1.5)))
    _draw_hist(ax, hist, unit, title or f"log2 histogram ({unit})")
    fig.tight_layout()
    return fig


def _fill_log2_gaps(lows: list, highs: list, counts: list) -> tuple[list, list, list]:
    """Add the empty power-of-two buckets between filled ones, as bpftrace prints them.

    Only when every closed bucket is a log2 bucket (``[0]``, ``[1]``, ``[2^k, 2^(k+1))``);
    anything else (an ``lhist``) is left as it is.
    """
    closed = [(lo, hi) for lo, hi in zip(lows, highs) if not (np.isnan(lo) or np.isnan(hi))]
    def is_log2(lo, hi):
        return (lo == hi and lo in (0, 1)) or (lo >= 2 and _is_pow2(lo) and hi + 1 == 2 * lo)
    if not closed or not all(is_log2(lo, hi) for lo, hi in closed):
        return lows, highs, counts
    have = {(lo, hi): c for lo, hi, c in zip(lows, highs, counts)}
    smallest, largest = min(lo for lo, _ in closed), max(lo for lo, _ in closed)
    wanted, lo = [], smallest
    while lo <= largest:
        hi = lo if lo < 2 else 2 * lo - 1
        wanted.append((float(lo), float(hi)))
        lo = lo + 1 if lo < 2 else 2 * lo
    out = [(lo, hi, have.get((lo, hi), 0)) for lo, hi in wanted]
    opened = [(lo, hi, c) for lo, hi, c in zip(lows, highs, counts) if np.isnan(lo) or np.isnan(hi)]
    out = [b for b in opened if np.isnan(b[0])] + out + [b for b in opened if np.isnan(b[1])]
    return [b[0] for b in out], [b[1] for b in out], [b[2] for b in out]


def _draw_hist(ax, hist: pd.DataFrame, unit: str, title: str) -> None:
    lows = pd.to_numeric(hist["min"], errors="coerce").astype("float64")
    highs = pd.to_numeric(hist["max"], errors="coerce").astype("float64")
    order = np.lexsort((highs.fillna(np.inf).to_numpy(), lows.fillna(-np.inf).to_numpy()))
    lows, highs, counts = _fill_log2_gaps(list(lows.iloc[order]), list(highs.iloc[order]),
                                          list(hist["count"].iloc[order]))
    labels = [bucket_label(lo, hi) for lo, hi in zip(lows, highs)]
    counts = np.asarray(counts, dtype="int64")
    y = np.arange(len(counts))
    bars = ax.barh(y, counts, color="tab:green", height=0.8)
    ax.set_yticks(y, labels, family="monospace")
    ax.invert_yaxis()  # smallest bucket on top, as bpftrace prints
    ax.bar_label(bars, labels=[f"{int(c):,}" for c in counts], padding=3, fontsize=9)
    ax.set_xlim(0, (counts.max() if len(counts) else 0) * 1.15 + 1)
    ax.grid(axis="x", alpha=0.3)
    _integer_ticks(ax.xaxis)
    _style(ax, title, "count (events)", f"bucket ({unit})")


def _hist_panels(hist: pd.DataFrame, key: str, names: list, unit: str, title: str | None):
    import matplotlib.pyplot as plt

    longest = max(int((hist[key] == s).sum()) for s in names)
    ncols = 2 if len(names) > 1 else 1
    nrows = (len(names) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, nrows * (0.3 * longest + 1.6)),
                             squeeze=False)
    plt.close(fig)
    for ax, name in zip(axes.flat, names):
        _draw_hist(ax, hist[hist[key] == name], unit, f"{name}")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title or (f"Latency histograms by {key} (ns)" if unit == "ns"
                           else f"Histograms by {key} ({unit})"), fontsize=_TITLE_SIZE)
    fig.tight_layout()
    return fig


def syscall_heatmap(events: pd.DataFrame, bin: Any = "100ms", top: int = 15, *,
                    column: str | None = None, names=None, ax=None, title: str | None = None):
    """Which syscalls ran when: one row per syscall, one column per time bin.

    ``events`` is a DataFrame from :func:`ebpf_lab.trace`, usually of
    ``tracepoint:raw_syscalls:sys_enter`` with ``fields=["id"]``. The syscall
    comes from ``column`` (by default the first of ``syscall``, ``name``,
    ``id``, ``nr``); numbers are turned into names with the running kernel's
    syscall table, or with ``names`` (a dict or a function number -> name);
    a number without a name is shown as ``#number``. The ``top`` busiest syscalls get a row, busiest on top; a
    cell's colour is the number of calls in that bin.

    Returns the matplotlib Figure.
    """
    _require(events, (), "syscall_heatmap", "ebpf_lab.trace()")
    width = _bin_seconds(bin)
    elapsed = _elapsed_ns(events, "syscall_heatmap")
    scale, unit = _time_unit(elapsed)
    labels = _syscall_names(events, column, names)
    order = list(labels.value_counts().index[:max(int(top), 1)])
    fig, ax = _new_axes(ax, figsize=(10.0, max(3.0, 0.35 * len(order) + 1.8)))
    _style(ax, title or f"Syscalls over time ({_bin_text(width)} bins)",
           f"time since first event ({unit})", "syscall")
    if events.empty:
        ax.text(0.5, 0.5, "no events", ha="center", va="center", transform=ax.transAxes)
        return fig
    idx, nbins = _bin_index(elapsed, width)
    grid = np.zeros((len(order), nbins), dtype="int64")
    row_of = {name: i for i, name in enumerate(order)}
    rows = labels.map(row_of)
    mask = rows.notna().to_numpy()
    np.add.at(grid, (rows[mask].astype("int64").to_numpy(), idx[mask]), 1)
    shown = np.ma.masked_equal(grid, 0)
    image = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="viridis",
                      vmin=0, vmax=max(int(grid.max()), 1), extent=(0, nbins * width / scale, len(order) - 0.5, -0.5))
    ax.set_yticks(np.arange(len(order)), order)
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label(f"calls per {_bin_text(width)} bin (count)", fontsize=_LABEL_SIZE - 1)
    fig.tight_layout()
    return fig
