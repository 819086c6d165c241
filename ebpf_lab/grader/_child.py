"""The grader's child process: runs ONE learner program and writes a JSON result.

Usage (by :mod:`ebpf_lab.grader.runner`, not by hand)::

    python -m ebpf_lab.grader._child JOB.json RESULT.json

The job holds only what a learner's program may know (the command to run, the
positional arguments). ``.bt`` files run through the public
:func:`ebpf_lab.bpftrace`, the same call learners use; ``.py`` files are imported
and their function is called. Output is normalized to JSON:

- bpftrace: ``{"lines": [...], "maps": {"@name": value or {key: value}},
  "hists": {"@name": [[min, max, count], ...]}}``
- Python: ``{"type": "dataframe", "columns": [...], "records": [...]}`` or
  ``{"type": "value", "value": ...}``
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any


def _jsonable(x: Any) -> Any:
    try:
        import numpy as np
        if isinstance(x, np.generic):
            x = x.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, bytes):
        return x.decode(errors="replace")
    if isinstance(x, dict):
        return {str(_key(k)): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return str(x)


def _key(k: Any) -> Any:
    if isinstance(k, (tuple, list)):
        return ",".join(str(_jsonable(v)) for v in k)
    return _jsonable(k)


def _frame(df: Any) -> dict:
    records = [{str(c): _jsonable(_na(v)) for c, v in row.items()} for row in df.to_dict(orient="records")]
    return {"type": "dataframe", "columns": [str(c) for c in df.columns], "records": records}


def _is_frame(x: Any) -> bool:
    return hasattr(x, "to_dict") and hasattr(x, "columns")


_TEXT_COLUMNS = ("line", "text", "output", "message", "data")


def _lines(events: Any) -> list[str]:
    if events is None:
        return []
    if _is_frame(events):
        cols = [str(c) for c in events.columns]
        for name in _TEXT_COLUMNS:
            if name in cols:
                return [str(v).rstrip("\n") for v in events[name].tolist()]
        value_cols = [c for c in events.columns if str(c) not in ("time", "timestamp", "seq", "ts")]
        return [" ".join(str(v) for v in row) for row in events[value_cols].itertuples(index=False)]
    return [str(e).rstrip("\n") for e in events]


def _map_value(v: Any) -> Any:
    """A map as a plain value: a number for a map without key, else {key: value}.

    Follows :func:`ebpf_lab.bpftrace_json.map_frame`: key columns are ``key`` or
    ``key0``, ``key1``...; the value column is named after the aggregation.
    """
    if _is_frame(v):
        keycols = [c for c in v.columns if str(c).startswith("key")]
        valcols = [c for c in v.columns if c not in keycols]
        recs = v.to_dict(orient="records")

        def val(row):
            vals = [_jsonable(_na(row[c])) for c in valcols]
            return vals[0] if len(vals) == 1 else dict(zip(map(str, valcols), vals))

        if not keycols:
            if len(recs) == 1:
                return val(recs[0])
            return [val(r) for r in recs]
        return {str(_key(tuple(_na(r[c]) for c in keycols) if len(keycols) > 1 else _na(r[keycols[0]]))): val(r)
                for r in recs}
    if hasattr(v, "to_dict") and not isinstance(v, dict):  # a Series
        return {str(_key(k)): _jsonable(x) for k, x in v.to_dict().items()}
    return _jsonable(v)


def _na(x: Any) -> Any:
    try:
        import pandas as pd
        if not isinstance(x, (list, tuple, dict)) and pd.isna(x):
            return None
    except (ImportError, TypeError, ValueError):
        pass
    return x


def _hist_value(v: Any) -> list:
    if _is_frame(v):
        recs = v.to_dict(orient="records")
    else:
        recs = list(v)
    out = []
    for r in recs:
        if isinstance(r, dict):
            lo = r.get("min", r.get("low", r.get("lo")))
            hi = r.get("max", r.get("high", r.get("hi")))
            out.append([_jsonable(_na(lo)), _jsonable(_na(hi)), _jsonable(_na(r.get("count")))])
        else:
            out.append(_jsonable(list(r)))
    return out


def _named(d: Any, frame_key: str) -> dict:
    """maps/hists as {"@name": ...}, whether given as a dict or one long DataFrame."""
    if d is None:
        return {}
    if _is_frame(d):
        cols = [str(c) for c in d.columns]
        col = next((c for c in ("map", "name") if c in cols), None)
        if col is None:
            return {frame_key: d}
        return {str(name): g.drop(columns=[col]) for name, g in d.groupby(col, sort=False)}
    return dict(d)


def normalize_bpftrace(result: Any) -> dict:
    maps = _named(getattr(result, "maps", None), "@")
    hists = _named(getattr(result, "hists", None), "@")
    return {
        "lines": ([str(x) for x in result.lines] if isinstance(getattr(result, "lines", None), list)
                  else _lines(getattr(result, "events", None))),
        "maps": {_at(k): _map_value(v) for k, v in maps.items()},
        "hists": {_at(k): _hist_value(v) for k, v in hists.items()},
    }


def _at(name: Any) -> str:
    name = str(name)
    return name if name.startswith("@") else "@" + name


def _describe_error(exc: BaseException, learner_file: str) -> str:
    from ..errors import EbpfLabError

    if isinstance(exc, EbpfLabError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, NotImplementedError):  # the untouched placeholder
        return str(exc) or "your function is not written yet (it raises NotImplementedError)"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == learner_file]
    where = f" (line {frames[-1].lineno} of your file: {frames[-1].line})" if frames else ""
    return f"your code raised {type(exc).__name__}: {exc}{where}"


def _run(job: dict) -> Any:
    import ebpf_lab
    from ..session import ProbeRun

    with ProbeRun() as run:
        if job.get("noise"):
            run.popen(job["noise"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if job["kind"] == "bt":
            program = Path(job["path"]).read_text()
            res = ebpf_lab.bpftrace(program, command=job.get("command"), args=list(job.get("args", [])),
                                    timeout=job["timeout"])
            return normalize_bpftrace(res)
        spec = importlib.util.spec_from_file_location("learner_exercise", job["path"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        fn = getattr(module, job["function"], None)
        if fn is None:
            raise AttributeError(f"your file defines no function named {job['function']!r}")
        value = fn(*job.get("call_args", []))
        if _is_frame(value):
            return _frame(value)
        return {"type": "value", "value": _jsonable(value)}


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    try:
        output = _run(job)
        out.write_text(json.dumps({"output": output}))
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a graded message
        from ..errors import NotSupportedError

        if isinstance(exc, NotSupportedError):  # the kernel lacks it: a skip, not a failure
            out.write_text(json.dumps({"unsupported": {"feature": exc.feature, "message": str(exc)}}))
        else:
            out.write_text(json.dumps({"error": _describe_error(exc, job["path"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
