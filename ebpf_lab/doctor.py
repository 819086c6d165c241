"""``ebpf_lab.doctor()``: what this machine can and cannot do with eBPF, and why.

One row per fact a learner needs -- privileges, kernel, BTF, tracefs, bpftrace,
bcc, kernel headers -- and one row per mechanism (tracepoint, kprobe, fentry,
...). Mechanisms are found by really loading and attaching something tiny
(:mod:`ebpf_lab.features`), never by comparing version numbers: this lab's own
kernel, for instance, *loads* kprobe programs but cannot *attach* them.

Every row has a ``status``:

``ok``       it works here (for a mechanism: it loaded, attached and fired);
``missing``  conclusively not available; ``next_step`` names the nearest thing that works;
``unknown``  the probe could not decide (not root, bcc missing, an odd error: see ``detail``).

>>> import ebpf_lab
>>> df = ebpf_lab.doctor()                       # doctest: +SKIP
>>> df[df.status != "ok"][["check", "next_step"]]  # doctest: +SKIP
>>> print(ebpf_lab.doctor.render_text(df))       # doctest: +SKIP

Results are cached for the life of the process and on disk, keyed by the
running kernel (``uname -r``) and its boot id, so nothing carries over to
another kernel or another boot; ``doctor(refresh=True)`` probes again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

from ._cache import cache_dir
from .errors import BackendMissingError, UsageError
from .features import ALTERNATIVES, MECHANISMS, Finding
from .privileges import effective_capabilities, missing_capabilities

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "CHECKS",
    "FACT_CHECKS",
    "MECHANISMS",
    "STATUSES",
    "doctor",
    "mechanism_status",
    "render_text",
    "report",
    "supports",
]

#: The fact rows, in display order (mechanism rows follow, see ``MECHANISMS``).
FACT_CHECKS = ("privileges", "kernel", "BTF", "tracefs", "bpftrace", "bcc", "kernel headers")
#: Every check name ``doctor`` reports, in order.
CHECKS = FACT_CHECKS + MECHANISMS
#: The only values of the ``status`` column.
STATUSES = ("ok", "missing", "unknown")
COLUMNS = ["check", "status", "detail", "next_step"]

# Files read by the fact checks; module attributes so tests can point them at fakes.
PROC_STATUS = "/proc/self/status"
PROC_MOUNTS = "/proc/mounts"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
BTF_VMLINUX = "/sys/kernel/btf/vmlinux"
MODULES_DIR = "/lib/modules"

CACHE_FORMAT = 1  # bump when a probe's logic changes, so old disk caches are ignored
ROOT_STEP = "run the lab as root: `sudo make lab`, or `sudo ebpf-lab doctor` in a terminal"

_lock = threading.RLock()
_mechanisms: dict[str, Finding] = {}  # this process's conclusive and inconclusive findings


# --------------------------------------------------------------------------- fact checks

def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _can_probe() -> bool:
    """True when this process holds the capabilities that loading BPF programs needs."""
    return not missing_capabilities(_read(PROC_STATUS) or "")


def check_privileges() -> Finding:
    """Capabilities (not the uid) decide whether we may load BPF programs."""
    text = _read(PROC_STATUS) or ""
    have = sorted(effective_capabilities(text))
    missing = missing_capabilities(text)
    uid = re.search(r"^Uid:\s+\d+\s+(\d+)", text, re.M)
    who = f"effective uid {uid.group(1)}" if uid else "uid unknown"
    if not missing:
        return Finding("ok", f"effective capabilities include {', '.join(have)} ({who})")
    return Finding(
        "missing",
        f"this process lacks {', '.join(missing)} ({who}; has {', '.join(have) or 'none of the eBPF ones'}): "
        "it cannot load BPF programs",
        ROOT_STEP,
    )


def check_kernel() -> Finding:
    """The running kernel: release, build and architecture (for the record, never to decide features)."""
    u = os.uname()
    config = "/proc/config.gz readable" if os.access("/proc/config.gz", os.R_OK) else "no /proc/config.gz"
    return Finding("ok", f"{u.release} ({u.version}), {u.machine}; {config}")


def check_btf() -> Finding:
    """Is the kernel's type information (BTF) there? fentry, LSM and CO-RE need it."""
    try:
        size = os.path.getsize(BTF_VMLINUX)
    except OSError:
        return Finding("missing", f"{BTF_VMLINUX} does not exist: this kernel was built without "
                                  "CONFIG_DEBUG_INFO_BTF",
                       "tracepoints and their format files still work; fentry, LSM programs and the "
                       "lab's BTF reader need a kernel with BTF")
    return Finding("ok", f"{BTF_VMLINUX} ({size / 1e6:.1f} MB)")


def tracefs_mounts(mounts_text: str | None = None) -> list[str]:
    """Every place tracefs is mounted, from /proc/mounts."""
    text = mounts_text if mounts_text is not None else (_read(PROC_MOUNTS) or "")
    return [p[1] for p in (ln.split() for ln in text.splitlines()) if len(p) > 2 and p[2] == "tracefs"]


def check_tracefs(mounts_text: str | None = None) -> Finding:
    """Where tracefs is mounted: tracepoint lists and format files live there."""
    where = tracefs_mounts(mounts_text)
    if not where:
        return Finding("missing", "tracefs is not mounted",
                       "mount it: `mount -t tracefs nodev /sys/kernel/tracing` (and "
                       "`mount -t debugfs nodev /sys/kernel/debug`, which bpftrace 0.17 reads)")
    if "/sys/kernel/debug/tracing" not in where and not os.path.isdir("/sys/kernel/debug/tracing/events"):
        return Finding("ok", f"mounted at {', '.join(where)}",
                       "bpftrace 0.17 also reads /sys/kernel/debug/tracing: "
                       "`mount -t debugfs nodev /sys/kernel/debug`")
    return Finding("ok", f"mounted at {', '.join(where)}")


def check_bpftrace() -> Finding:
    """Is bpftrace installed, and which version?"""
    path = shutil.which("bpftrace")
    if path is None:
        return Finding("missing", "bpftrace is not on PATH", "`apt-get install bpftrace` (or run `make setup`)")
    try:
        from .session import time_scale  # noqa: PLC0415

        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20 * time_scale())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("unknown", f"{path} --version failed: {exc}", "run `bpftrace --version` to see why")
    version = (out.stdout.strip() or out.stderr.strip()).splitlines()[:1]
    if out.returncode != 0 or not version:
        return Finding("unknown", f"{path} --version exited {out.returncode}: {out.stderr.strip()[:200]}",
                       "run `bpftrace --version` to see why")
    return Finding("ok", f"{version[0]} ({path})")


def check_bcc() -> Finding:
    """Can Python import bcc (Debian's python3-bpfcc)?"""
    from ._bcc import load_bcc  # noqa: PLC0415

    try:
        bcc = load_bcc()
    except BackendMissingError as exc:
        return Finding("missing", exc.what, exc.next_step or "run `make setup`")
    version = getattr(bcc, "__version__", "version unknown")
    return Finding("ok", f"bcc {version} ({os.path.dirname(os.path.realpath(bcc.__file__))})")


def headers_release(build: str) -> str | None:
    """The kernel release a header tree was made for (UTS_RELEASE, else its directory name)."""
    uts = _read(os.path.join(build, "include", "generated", "utsrelease.h"))
    if uts:
        m = re.search(r'UTS_RELEASE\s+"([^"]+)"', uts)
        if m:
            return m.group(1)
    m = re.search(r"linux-headers-(.+)$", os.path.basename(os.path.realpath(build).rstrip("/")))
    if m:
        return m.group(1)
    rel = _read(os.path.join(build, "include", "config", "kernel.release"))
    return rel.strip() if rel else None


def check_headers(release: str | None = None) -> Finding:
    """Kernel headers for bcc: exact (match the running kernel), fallback (another version) or missing."""
    release = release or os.uname().release
    build = os.path.join(MODULES_DIR, release, "build")
    if not os.path.isdir(build):
        dangling = " (a dangling link)" if os.path.islink(build) else ""
        return Finding("missing", f"{build} does not exist{dangling}: bcc cannot compile programs",
                       "run `make setup`: it installs Debian's linux-headers and links them as a fallback "
                       f"(or `apt-get install linux-headers-{release}` if your distribution has them)")
    target = os.path.realpath(build)
    have = headers_release(build)
    if have is None:
        return Finding("unknown", f"{build} -> {target}, but its kernel version cannot be read",
                       "check that the link points at a kernel header tree")
    if have == release:
        return Finding("ok", f"exact: {build} -> {target} (headers of {have})")
    return Finding(
        "ok",
        f"fallback: {build} -> {target}, headers of {have}, not of the running {release}",
        "bcc compiles, and tracepoint arguments and helpers are right, but C code that walks kernel "
        "structs may read wrong offsets: read struct fields through tracepoint arguments or BTF instead",
    )


FACTS = {
    "privileges": check_privileges,
    "kernel": check_kernel,
    "BTF": check_btf,
    "tracefs": check_tracefs,
    "bpftrace": check_bpftrace,
    "bcc": check_bcc,
    "kernel headers": check_headers,
}


# --------------------------------------------------------------------------- disk cache

def _probes_digest() -> str:
    """A digest of the probing code: changing how a mechanism is probed invalidates the cache."""
    import hashlib  # noqa: PLC0415

    from . import features  # noqa: PLC0415

    try:
        with open(features.__file__, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()[:16]
    except OSError:
        return "unknown"


def _cache_key() -> dict:
    from . import __version__  # noqa: PLC0415

    return {"format": CACHE_FORMAT, "lab": __version__, "probes": _probes_digest(),
            "release": os.uname().release, "boot_id": (_read(BOOT_ID) or "").strip(),
            "python": sys.version.split()[0]}


def cache_path() -> str:
    """Where conclusive mechanism findings are kept between runs (``$EBPF_LAB_CACHE_DIR`` overrides)."""
    return str(cache_dir() / "doctor.json")


def _load_disk() -> dict[str, Finding]:
    text = _read(cache_path())
    if not text:
        return {}
    try:
        data = json.loads(text)
        if data.get("key") != _cache_key() or not data["key"]["boot_id"]:
            return {}
        return {n: Finding(*v) for n, v in data["findings"].items()
                if n in MECHANISMS and v[0] in ("ok", "missing")}
    except (ValueError, KeyError, TypeError):
        return {}


def _save_disk(findings: dict[str, Finding]) -> None:
    conclusive = {n: [f.status, f.detail, f.next_step] for n, f in findings.items() if f.status in ("ok", "missing")}
    path = cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"key": _cache_key(), "findings": conclusive}, fh, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache is an optimisation: never fail because of it


# --------------------------------------------------------------------------- mechanisms

def _mechanism_findings(refresh: bool = False, bcc_row: Finding | None = None) -> dict[str, Finding]:
    """Findings for every mechanism: from the caches unless ``refresh``, else by probing."""
    with _lock:
        if not _can_probe():
            return {n: Finding("unknown", "needs root to probe (loading BPF programs needs CAP_BPF and "
                                          "CAP_PERFMON, or CAP_SYS_ADMIN)", ROOT_STEP) for n in MECHANISMS}
        if refresh:
            _mechanisms.clear()
        elif not _mechanisms:
            _mechanisms.update(_load_disk())
        # an inconclusive answer stays for this process (a new process, or refresh, retries it)
        todo = [n for n in MECHANISMS if n not in _mechanisms]
        if todo:
            bcc_row = bcc_row or check_bcc()
            if bcc_row.status != "ok":
                return {**{n: Finding("unknown", f"needs bcc to probe: {bcc_row.detail}", bcc_row.next_step)
                           for n in todo}, **{n: f for n, f in _mechanisms.items() if n not in todo}}
            from .features import probe  # noqa: PLC0415

            _mechanisms.update(probe(todo))
            _save_disk(_mechanisms)
        return {n: _mechanisms[n] for n in MECHANISMS}


def mechanism_status(name: str) -> tuple[str, str]:
    """``(status, detail)`` for one mechanism, e.g. ``mechanism_status("kprobe")``, or one fact row ("BTF").

    ``status`` is ``ok``, ``missing`` or ``unknown``. The first call probes every
    mechanism at once (one compile, a few seconds); later calls are cached.
    ``tests/conftest.py::require_feature`` skips a test only on ``missing``.
    """
    if name in FACTS:  # a fact row ("BTF", "tracefs"...) answers too: exercises may need one
        found = FACTS[name]()
        return found.status, found.detail
    if name not in MECHANISMS:
        import difflib  # noqa: PLC0415

        close = difflib.get_close_matches(name, CHECKS, n=3, cutoff=0.4)
        raise UsageError(f"unknown mechanism {name!r}",
                         cause="the name must be one of doctor's mechanism rows",
                         next_step=("did you mean " + " or ".join(repr(c) for c in close) + "? " if close else "")
                         + "valid names: " + ", ".join(MECHANISMS))
    found = _mechanism_findings()[name]
    return found.status, found.detail


def supports(name: str) -> bool:
    """True only when the mechanism conclusively works on this kernel (``mechanism_status`` is ``ok``)."""
    return mechanism_status(name)[0] == "ok"


# --------------------------------------------------------------------------- the table

def report(refresh: bool = False) -> "pd.DataFrame":
    """Check this machine for eBPF: one row per fact and per mechanism.

    Returns a DataFrame with columns ``check``, ``status`` (``ok``, ``missing``
    or ``unknown``), ``detail`` and ``next_step``. Mechanisms are probed by
    loading and attaching tiny programs (about 2-5 s the first time; cached per
    process and per kernel boot afterwards); pass ``refresh=True`` to probe again.
    Works without root too: then the privileges row says what to do and the
    mechanism rows are ``unknown``.

    ``df.attrs["elapsed_s"]`` is how long this call took.

    >>> df = ebpf_lab.doctor()                          # doctest: +SKIP
    >>> df.set_index("check").loc["kprobe", "status"]   # doctest: +SKIP
    'missing'
    """
    import pandas as pd  # noqa: PLC0415 - keep `mechanism_status` light to import

    started = time.monotonic()
    rows: list[tuple[str, Finding]] = []
    for name, check in FACTS.items():
        try:
            found = check()
        except Exception as exc:  # noqa: BLE001 - a doctor must never crash
            found = Finding("unknown", f"checking {name} failed: {type(exc).__name__}: {exc}",
                            "report this with the detail")
        rows.append((name, found))
    bcc_row = dict(rows)["bcc"]
    for name, found in _mechanism_findings(refresh, bcc_row).items():
        if found.status == "missing" and not found.next_step:
            found = Finding(found.status, found.detail, ALTERNATIVES[name])
        rows.append((name, found))
    df = pd.DataFrame([(n, f.status, f.detail, f.next_step) for n, f in rows], columns=COLUMNS)
    df.attrs["elapsed_s"] = round(time.monotonic() - started, 3)
    return df


def render_text(df: "pd.DataFrame", width: int = 80) -> str:
    """The doctor table as plain text that fits ``width`` columns (for ``ebpf-lab doctor``).

    Each row is ``check  status  detail``, the detail wrapped under itself; a
    non-empty ``next_step`` follows on its own lines, starting with ``->``.
    """
    width = max(int(width), 50)
    cw = max(12, min(20, max((len(str(c)) for c in df["check"]), default=12)))
    sw = 8
    indent = " " * (cw + 1 + sw + 1)
    body = width - len(indent)
    lines = [f"{'check':<{cw}} {'status':<{sw}} detail", "-" * width]
    for row in df.itertuples(index=False):
        check, status = str(row.check), str(row.status)
        detail = textwrap.wrap(str(row.detail), body) or [""]
        head = check if len(check) <= cw else check[: cw - 1] + "~"
        lines.append(f"{head:<{cw}} {status:<{sw}} {detail[0]}")
        lines.extend(indent + d for d in detail[1:])
        if row.next_step:
            step = textwrap.wrap(str(row.next_step), body - 3) or [""]
            lines.append(indent + "-> " + step[0])
            lines.extend(indent + "   " + s for s in step[1:])
    counts = df["status"].value_counts()
    lines.append("-" * width)
    lines.append(", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
                 + (f"  ({df.attrs['elapsed_s']:.1f} s)" if "elapsed_s" in df.attrs else ""))
    return "\n".join(lines)


from ._callable import callable_module  # noqa: E402

doctor = callable_module(__name__, report)
