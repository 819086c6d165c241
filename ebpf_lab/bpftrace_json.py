"""Turn bpftrace 0.17 ``-f json`` output into pandas DataFrames (pure: no root, no bpftrace).

bpftrace with ``-f json`` prints one JSON object per line::

    {"type": "attached_probes", "data": {"probes": 1}}
    {"type": "printf", "data": "cat\\t1234\\t/etc/hosts\\n"}
    {"type": "map", "data": {"@counts": {"cat": 23}}}
    {"type": "hist", "data": {"@": [{"min": 4, "max": 7, "count": 23}]}}
    {"type": "stats", "data": {"@st": {"count": 2, "average": 15, "total": 30}}}
    {"type": "lost_events", "data": {"events": 12}}

:class:`OutputCollector` takes those lines one at a time (so a run that is cut
short keeps what it printed) and builds the frames:

- ``events``: one row per printed line (``printf``, ``time``, ``join``, ``print``
  of a plain value); a ``text`` column, or typed columns when you pass
  ``columns=`` (tab-separated printf fields, see :func:`events_frame`);
- ``maps``: map name (``@``, ``@counts``) -> DataFrame with key columns
  (``key``, or ``key0``, ``key1``... for multi-part keys) and value columns named
  after the aggregation (``count``, ``sum``, ``avg``, ``min``, ``max``,
  ``value``; ``stats()`` gives ``count``, ``average``, ``total``);
- ``hists``: map name -> DataFrame of ``min``, ``max``, ``count`` (plus key
  columns for keyed histograms). :func:`hist_text` draws one the way bpftrace does.

Quirks of bpftrace 0.17 handled here, all seen on real output (the fixtures in
``tests/fixtures/bpftrace/``):

- multi-part keys arrive joined with commas: ``@[1, "x"]`` prints ``"1,x"``. A
  string key that itself holds a comma is ambiguous; the key arity read from
  the program decides how to split (see :func:`program_maps`).
- non-ASCII bytes arrive as ``\\uffffffc3``; they are decoded back to UTF-8.
- ``avg()`` maps arrive as type ``stats`` with a plain number.
- a histogram's underflow bucket has no ``min`` and its overflow bucket no ``max``.
- output of a command started with ``-c`` shares bpftrace's stdout: lines that
  are not JSON go to :attr:`OutputCollector.output`.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

__all__ = [
    "OutputCollector",
    "events_frame",
    "hist_frame",
    "hist_text",
    "map_frame",
    "parse_columns_spec",
    "parse_line",
    "program_maps",
    "split_key",
]

_BAD_ESCAPE = re.compile(r"\\uffffff([0-9a-fA-F]{2})")
_DTYPES = {"int": "int64", "int64": "int64", "float": "float64", "float64": "float64",
           "str": "string", "string": "string", "bool": "bool", "object": "object"}


# --------------------------------------------------------------------------- lines

def _fix_bytes(value: Any) -> Any:
    """Undo bpftrace 0.17's sign-extended escapes: chars 0x80-0xff are raw UTF-8 bytes."""
    if isinstance(value, str):
        if any("\x80" <= ch <= "\xff" for ch in value) and all(ch <= "\xff" for ch in value):
            return value.encode("latin-1").decode("utf-8", errors="replace")
        return value
    if isinstance(value, list):
        return [_fix_bytes(v) for v in value]
    if isinstance(value, dict):
        return {_fix_bytes(k): _fix_bytes(v) for k, v in value.items()}
    return value


def parse_line(line: str) -> dict | None:
    """Parse one line of ``bpftrace -f json`` output; ``None`` if it is not bpftrace JSON.

    >>> parse_line('{"type": "map", "data": {"@": 23}}')
    {'type': 'map', 'data': {'@': 23}}
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    fixed = _BAD_ESCAPE.sub(lambda m: "\\u00" + m.group(1), text)
    try:
        obj = json.loads(fixed)
    except ValueError:
        return None
    if not isinstance(obj, dict) or "type" not in obj:
        return None
    if fixed != text:
        obj = _fix_bytes(obj)
    return obj


# --------------------------------------------------------------------------- program

# string literals and comments: a header's example output ("@[comm]: 23") is not code
_CODE_NOISE = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.S)
_MAP_USE = re.compile(r"(@[A-Za-z_0-9]*)\s*(\[)?")
_AGG_CALL = re.compile(r"\s*=\s*(count|sum|avg|min|max|stats|hist|lhist)\s*\(")


def _bracket_arity(program: str, start: int) -> tuple[int, int]:
    """Count top-level comma-separated parts of the ``[...]`` opening at ``start``."""
    depth, parts, i, quote = 0, 1, start, None
    while i < len(program):
        ch = program[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch == '"':
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth == 0:
                return parts, i
        elif ch == "," and depth == 1:
            parts += 1
        i += 1
    return parts, i


def program_maps(program: str) -> dict[str, dict]:
    """What a bpftrace program says about its maps: ``{name: {"arity": n, "func": f}}``.

    ``arity`` is the number of key parts (0 for a map without key), ``func`` the
    aggregation assigned to it (``count``, ``hist``...) or ``None``. This is a
    light scan, not a parser; it only helps to name and split columns.

    >>> program_maps('tracepoint:x:y { @[pid, comm] = count(); @h = hist(arg0); }')
    {'@': {'arity': 2, 'func': 'count'}, '@h': {'arity': 0, 'func': 'hist'}}
    """
    program = _CODE_NOISE.sub(lambda m: " " if m.group(0)[0] == "/" else '""', program)
    found: dict[str, dict] = {}
    for m in _MAP_USE.finditer(program):
        name = m.group(1)
        info = found.setdefault(name, {"arity": None, "func": None})
        end = m.end()
        if m.group(2):
            arity, close = _bracket_arity(program, m.start(2))
            end = close + 1
        else:
            arity = 0
        agg = _AGG_CALL.match(program, end)
        # a map used bare inside print()/clear() says nothing about its key
        if info["arity"] is None and (m.group(2) or agg or re.match(r"\s*=[^=]", program[end:end + 3])):
            info["arity"] = arity
        if agg and info["func"] is None:
            info["func"] = agg.group(1)
    for info in found.values():
        if info["arity"] is None:
            info["arity"] = 0
    return found


# --------------------------------------------------------------------------- keys

def _is_int(text: str) -> bool:
    return bool(re.fullmatch(r"-?\d+", text))


def split_key(key: str, arity: int | None) -> list[str]:
    """Split a bpftrace JSON key into its parts.

    bpftrace 0.17 joins multi-part keys with commas (``@[1, "x"]`` -> ``"1,x"``).
    With ``arity`` 1 the key is never split (a file name may hold a comma); with
    more pieces than ``arity`` the surplus commas go back into the first run of
    pieces that holds no integer (integers cannot hold commas), so
    ``@["a,b", 3]`` gives ``["a,b", "3"]``.
    """
    if arity is not None and arity <= 1:
        return [key]
    parts = key.split(",")
    if arity is None or len(parts) == arity:
        return parts
    if len(parts) < arity:
        return parts + [""] * (arity - len(parts))
    surplus = len(parts) - arity

    def merged(start: int) -> list[str]:
        return parts[:start] + [",".join(parts[start:start + surplus + 1])] + parts[start + surplus + 1:]

    # the comma-holding part is the first run of pieces none of which is an integer
    for start in range(arity):
        if not any(_is_int(p) for p in parts[start:start + surplus + 1]):
            return merged(start)
    return merged(0)


def _typed(series: pd.Series) -> pd.Series:
    """Integers as int64 when every value is one, else strings."""
    values = series.astype(str)
    if len(values) and values.map(_is_int).all():
        try:
            return values.astype("int64")
        except (OverflowError, ValueError):
            return values.map(int).astype(object)
    return values.astype(object)


def _key_columns(keys: Sequence[str], arity: int | None) -> pd.DataFrame:
    if arity is None:
        # guess: split only when every key splits into the same number of parts
        counts = {len(k.split(",")) for k in keys}
        arity = counts.pop() if len(counts) == 1 else 1
    rows = [split_key(k, arity) for k in keys]
    names = ["key"] if arity <= 1 else [f"key{i}" for i in range(arity)]
    frame = pd.DataFrame(rows, columns=names) if rows else pd.DataFrame({n: pd.Series(dtype=object) for n in names})
    for name in names:
        frame[name] = _typed(frame[name])
    return frame


# --------------------------------------------------------------------------- maps

_STATS = ("count", "average", "total")


def _value_columns(values: list, func: str | None, kind: str) -> pd.DataFrame:
    if kind == "stats" and values and all(isinstance(v, dict) for v in values):
        return pd.DataFrame([[v.get(c) for c in _STATS] for v in values], columns=list(_STATS)).astype("int64")
    if kind == "stats" and func in (None, "avg", "stats"):
        name = "avg"
    else:
        name = func if func in ("count", "sum", "avg", "min", "max") else "value"
    if values and all(isinstance(v, list) for v in values):
        width = max(len(v) for v in values)
        return pd.DataFrame([list(v) + [None] * (width - len(v)) for v in values],
                            columns=[f"value{i}" for i in range(width)])
    col = pd.Series(values, dtype=object, name=name)
    if len(col) and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        col = col.astype("int64")
    elif name in _STATS or name in ("count", "sum", "avg", "min", "max"):
        col = col.astype("int64") if not len(col) else col
    return col.to_frame()


def map_frame(name: str, data: Any, *, kind: str = "map", arity: int | None = None,
              func: str | None = None) -> pd.DataFrame:
    """One bpftrace map as a DataFrame.

    ``data`` is the value bpftrace printed for the map: a number, string or
    list for a map without key, else a dict key -> value. ``kind`` is the JSON
    ``type`` (``map`` or ``stats``), ``arity`` the number of key parts and
    ``func`` the aggregation (from :func:`program_maps`) used to name the value
    column. Rows are sorted by value, largest first, like bpftrace prints them
    in reverse.
    """
    if isinstance(data, dict) and not (kind == "stats" and set(data) == set(_STATS) and arity in (0, None)
                                       and not any(isinstance(v, dict) for v in data.values())):
        keys = list(data)
        values = [data[k] for k in keys]
        frame = pd.concat([_key_columns(keys, arity), _value_columns(values, func, kind)], axis=1)
    else:
        frame = _value_columns([data], func, kind)
    frame.attrs.update({"map": name, "kind": kind, "func": func})
    sort = [c for c in ("count", "sum", "total", "avg", "max", "min", "value") if c in frame.columns]
    if sort and len(frame) > 1 and frame[sort[0]].dtype != object:
        frame = frame.sort_values(sort[0], ascending=False, kind="stable").reset_index(drop=True)
        frame.attrs.update({"map": name, "kind": kind, "func": func})
    return frame


# --------------------------------------------------------------------------- hists

def _buckets(buckets: list) -> pd.DataFrame:
    return pd.DataFrame({
        "min": pd.array([b.get("min") for b in buckets], dtype="Int64"),
        "max": pd.array([b.get("max") for b in buckets], dtype="Int64"),
        "count": pd.array([b.get("count", 0) for b in buckets], dtype="int64"),
    })


def _is_log2(buckets: list) -> bool:
    for b in buckets:
        lo, hi = b.get("min"), b.get("max")
        if lo is None or hi is None or lo == hi:
            continue
        if hi + 1 != 2 * lo:
            return False
    return True


def hist_frame(name: str, data: Any, *, arity: int | None = None, func: str | None = None) -> pd.DataFrame:
    """A bpftrace ``hist()``/``lhist()`` map as a DataFrame of ``min``, ``max``, ``count``.

    Bounds are inclusive (bpftrace's ``[4, 8)`` bucket is ``min=4, max=7``); the
    underflow bucket has ``min`` NA and the overflow bucket ``max`` NA. A keyed
    histogram gets key columns first, one block of rows per key. An emptied
    histogram (``zero()``) gives an empty frame with the same columns.
    ``attrs["kind"]`` says ``hist`` (power-of-2 buckets) or ``lhist``.
    """
    if isinstance(data, dict):
        parts = []
        keys = list(data)
        keycols = _key_columns(keys, arity)
        for i, key in enumerate(keys):
            b = _buckets(data[key])
            for col in reversed(keycols.columns):
                b.insert(0, col, pd.Series([keycols[col].iloc[i]] * len(b), dtype=keycols[col].dtype))
            parts.append(b)
        frame = pd.concat(parts, ignore_index=True) if parts else pd.concat([keycols, _buckets([])], axis=1)
        all_buckets = [b for k in keys for b in data[k]]
    else:
        frame = _buckets(list(data or []))
        all_buckets = list(data or [])
    kind = func if func in ("hist", "lhist") else ("hist" if _is_log2(all_buckets) else "lhist")
    frame.attrs.update({"map": name, "kind": kind})
    return frame


_SUFFIXES = ((1 << 60, "E"), (1 << 50, "P"), (1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K"))


def _human(n: int) -> str:
    for size, suffix in _SUFFIXES:
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def _label(lo, hi, log2: bool) -> str:
    if pd.isna(lo):
        return f"(..., {_human(int(hi) + 1) if log2 else int(hi) + 1})"
    if pd.isna(hi):
        return f"[{_human(int(lo)) if log2 else int(lo)}, ...)"
    lo, hi = int(lo), int(hi)
    if log2:
        return f"[{lo}]" if lo == hi else f"[{_human(lo)}, {_human(hi + 1)})"
    return f"[{lo}, {hi + 1})"


def hist_text(df: pd.DataFrame, *, width: int = 52) -> str:
    """Draw a histogram DataFrame the way bpftrace prints one::

        [4, 8)                23 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

    ``df`` has ``min``, ``max`` and ``count`` (as from :func:`hist_frame`); a
    keyed histogram is drawn once per key under a ``@name[key]:`` header. Bars
    are scaled to the largest count, ``width`` characters at most.
    """
    keys = [c for c in df.columns if c == "key" or re.fullmatch(r"key\d+", str(c))]
    name = df.attrs.get("map", "@")
    if keys:
        blocks = []
        for key, group in df.groupby(keys, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            sub = group.drop(columns=keys).reset_index(drop=True)
            sub.attrs = dict(df.attrs)
            blocks.append(f"{name}[{', '.join(str(k) for k in key)}]: \n" + hist_text(sub, width=width))
        return "\n".join(blocks)
    if df.empty:
        return ""
    kind = df.attrs.get("kind")
    log2 = kind == "hist" if kind in ("hist", "lhist") else _is_log2(
        [{"min": None if pd.isna(a) else int(a), "max": None if pd.isna(b) else int(b)}
         for a, b in zip(df["min"], df["max"])])
    top = int(df["count"].max()) or 1
    lines = []
    for lo, hi, count in zip(df["min"], df["max"], df["count"]):
        bar = "@" * (int(count) * width // top)
        lines.append(f"{_label(lo, hi, log2):<16}{int(count):>8} |{bar:<{width}}|")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- events

def parse_columns_spec(spec: str | Sequence | Mapping | None) -> list[tuple[str, str | None]] | None:
    """Normalise a ``columns=`` spec to ``[(name, dtype-or-None), ...]``.

    Accepts ``"comm,pid:int,file"``, ``["comm", ("pid", int), "file"]`` or
    ``{"comm": str, "pid": int, "file": str}``. Dtypes: ``int``, ``float``,
    ``str``, ``bool`` (Python types or their names) or any pandas dtype name.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        items: list = []
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, _, dtype = part.partition(":")
            items.append((name.strip(), dtype.strip() or None))
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        items = [(it, None) if isinstance(it, str) else tuple(it) for it in spec]
    out = []
    for name, dtype in items:
        if isinstance(dtype, type):
            dtype = dtype.__name__
        if dtype is not None:
            dtype = _DTYPES.get(str(dtype), str(dtype))
        out.append((str(name), dtype))
    if not out:
        from .errors import UsageError
        raise UsageError("columns= names no column",
                         next_step='give names like columns=["comm", ("pid", int), "file"] or "comm,pid:int,file"')
    return out


def _convert(series: pd.Series, dtype: str | None, name: str) -> pd.Series:
    if dtype is None or dtype == "object":
        return series
    if dtype == "string":
        return series.astype("string")
    try:
        if dtype == "int64":
            num = pd.to_numeric(series, errors="raise")
            return num.astype("int64") if not num.isna().any() else num.astype("Int64")
        if dtype == "float64":
            return pd.to_numeric(series, errors="raise").astype("float64")
        if dtype == "bool":
            return series.map(lambda v: None if v is None else str(v).strip().lower() in ("1", "true", "yes"))
        return series.astype(dtype)
    except (ValueError, TypeError) as exc:
        from .errors import UsageError
        bad = [v for v in series if v is not None][:3]
        raise UsageError(
            f"column {name!r} cannot be converted to {dtype} ({exc}); first values: {bad}",
            cause="the printf fields are not in the order of columns=, or a field is not tab-separated",
            next_step="check that printf separates fields with \\t in the same order as columns=, "
            "or drop the dtype to keep the text",
        ) from exc


def events_frame(lines: Sequence[str], columns=None) -> pd.DataFrame:
    """Printed lines as a DataFrame.

    Without ``columns`` there is one ``text`` column. With ``columns`` (see
    :func:`parse_columns_spec`) each line is split on tabs into that many
    fields (the last field keeps any extra tabs; missing fields are NA) and
    each field converted to its dtype, so
    ``printf("%s\\t%d\\t%s\\n", comm, pid, str(args->filename))`` with
    ``columns=["comm", ("pid", int), "file"]`` gives an int64 ``pid`` column.
    """
    spec = parse_columns_spec(columns)
    if spec is None:
        return pd.DataFrame({"text": pd.Series(list(lines), dtype=object)})
    n = len(spec)
    rows = []
    for line in lines:
        fields = line.split("\t", n - 1)
        rows.append(fields + [None] * (n - len(fields)))
    frame = pd.DataFrame(rows, columns=[name for name, _ in spec]) if rows else \
        pd.DataFrame({name: pd.Series(dtype=object) for name, _ in spec})
    for name, dtype in spec:
        frame[name] = _convert(frame[name], dtype, name)
    return frame


# --------------------------------------------------------------------------- collector

class OutputCollector:
    """Accumulate bpftrace ``-f json`` lines as they arrive; build frames on demand.

    Thread-safe: a reader thread calls :meth:`feed`, the caller reads the
    frames whenever it likes (partial results survive a timeout or an
    interrupt). A printf without a trailing newline is joined with the next
    printed text, so ``printf("part"); printf("ial\\n")`` is one row ``partial``.
    """

    def __init__(self, program: str = "") -> None:
        self.program = program
        self.lines: list[str] = []          # completed printed lines
        self._pending = ""                  # printf text waiting for its newline
        self.raw_maps: dict[str, tuple[str, Any]] = {}   # name -> (type, data), last print wins
        self.lost = 0
        self.attached_probes: int | None = None
        self.output: list[str] = []         # non-JSON stdout lines (the -c command's output)
        self.records = 0
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        """Take one raw stdout line (with or without its newline)."""
        obj = parse_line(line)
        if obj is None:
            text = line.rstrip("\n")
            idx = text.find('{"type": ')
            if idx > 0:                      # command output without newline, then bpftrace JSON
                obj = parse_line(text[idx:])
                text = text[:idx]
            with self._lock:
                if text.strip():
                    self.output.append(text)
            if obj is None:
                return
        with self._lock:
            self._take(obj)

    def feed_all(self, lines: Iterable[str]) -> "OutputCollector":
        for line in lines:
            self.feed(line)
        return self

    def _take(self, obj: dict) -> None:
        self.records += 1
        kind, data = obj.get("type"), obj.get("data")
        if kind in ("printf", "time", "join", "value", "syscall", "cat"):
            if kind == "value" and not isinstance(data, str):
                data = json.dumps(data)
            text = str(data)
            if kind in ("join", "value") and not text.endswith("\n"):
                text += "\n"   # bpftrace prints these as whole lines
            text = self._pending + text
            *done, self._pending = text.split("\n")
            self.lines.extend(done)
        elif kind in ("map", "hist", "stats") and isinstance(data, dict):
            for name, value in data.items():
                self.raw_maps[name] = (kind, value)
        elif kind == "lost_events" and isinstance(data, dict):
            self.lost += int(data.get("events", 0))
        elif kind == "attached_probes" and isinstance(data, dict):
            self.attached_probes = data.get("probes")

    # -- frames ---------------------------------------------------------------
    def event_lines(self) -> list[str]:
        with self._lock:
            return self.lines + ([self._pending] if self._pending else [])

    def events(self, columns=None) -> pd.DataFrame:
        """The printed lines as a DataFrame (see :func:`events_frame`)."""
        return events_frame(self.event_lines(), columns)

    def _frames(self, want_hist: bool) -> dict[str, pd.DataFrame]:
        info = program_maps(self.program)
        with self._lock:
            items = list(self.raw_maps.items())
        out = {}
        for name, (kind, data) in sorted(items):
            meta = info.get(name, {})
            arity = meta.get("arity") if meta else None
            if (kind == "hist") != want_hist:
                continue
            if kind == "hist":
                out[name] = hist_frame(name, data, arity=arity, func=meta.get("func"))
            else:
                out[name] = map_frame(name, data, kind=kind, arity=arity, func=meta.get("func"))
        return out

    def maps(self) -> dict[str, pd.DataFrame]:
        """Every non-histogram map printed, by name (see :func:`map_frame`)."""
        return self._frames(False)

    def hists(self) -> dict[str, pd.DataFrame]:
        """Every histogram printed, by name (see :func:`hist_frame`)."""
        return self._frames(True)
