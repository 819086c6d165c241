"""Output recorded on *another* kernel, always shown with a label that says so.

Some lessons teach mechanisms this machine's kernel lacks (kprobes, fentry,
``override()``). The notebooks then run the closest mechanism that works here,
and show what the real mechanism printed on a kernel that has it: a recording.
A recording is never presented as if it came from your kernel: every view of
it starts with a label such as

    Recorded on 6.1.0-56-amd64 (Debian stock kernel under QEMU) on 2026-11-25 -- not from your kernel

and when no recording exists, :func:`show` says "no recording yet" and how to
make one, instead of showing anything invented.

The format: one JSON file per recording in ``notebooks/recorded/NAME.json``::

    {
      "format": 1,
      "name": "kprobe_openat2",                 # the file's stem
      "kernel": "6.1.0-56-amd64",               # uname -r where it ran
      "kernel_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.x",   # uname -v (optional)
      "machine": "Debian stock kernel under QEMU (virtme-ng)",   # where, in words
      "recorded_at": "2026-11-25T21:03:11Z",    # UTC, ISO 8601
      "tool": "bpftrace v0.17.0",               # the tool and its version (optional)
      "command": "bpftrace -e '...' -c /usr/bin/cat cat",        # what was run, as typed
      "program": "kprobe:do_sys_openat2 ...",   # the probe program itself
      "output": "cat (231) -> /etc/ld.so.cache\\n...",             # stdout, verbatim
      "stderr": "",                             # stderr, verbatim (optional)
      "exit_code": 0,
      "regenerate": "scripts/record_kprobes.sh" # the command that remakes it
    }

Recordings are made by running a command for real on the other kernel:
``python -m ebpf_lab.recorded run NAME OUTDIR --machine TEXT --program TEXT -- ARGV...``
runs ARGV, and writes ``OUTDIR/NAME.json`` with what it printed (this is what
``scripts/record_kprobes.sh`` does inside the QEMU guest). Introduced in lesson
03 (kprobes), used again in lessons 04 (fentry) and 05 (override).

This module is pure: it reads and writes JSON files, nothing else.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

__all__ = ["FORMAT", "NoRecording", "Recording", "available", "load", "record", "recordings_dir", "show"]

FORMAT = 1
REQUIRED = ("name", "kernel", "machine", "recorded_at", "command", "program", "output")
REGENERATE = "scripts/record_kprobes.sh"


def recordings_dir() -> Path:
    """Where recordings live: ``$EBPF_LAB_RECORDINGS``, else ``notebooks/recorded`` of the lab's home."""
    env = os.environ.get("EBPF_LAB_RECORDINGS")
    if env:
        return Path(env)
    try:
        from .grader.home import find_home  # noqa: PLC0415

        return find_home() / "notebooks" / "recorded"
    except Exception:  # noqa: BLE001 - no home: the checkout this module came from
        return Path(__file__).resolve().parents[1] / "notebooks" / "recorded"


@dataclass(frozen=True)
class Recording:
    """One recorded run on another kernel. ``label`` says where and when, always."""

    name: str
    kernel: str
    machine: str
    recorded_at: str
    command: str
    program: str
    output: str
    stderr: str = ""
    exit_code: int | None = None
    tool: str = ""
    kernel_version: str = ""
    regenerate: str = REGENERATE
    path: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def date(self) -> str:
        """The day it was recorded (``YYYY-MM-DD``)."""
        return self.recorded_at[:10]

    @property
    def label(self) -> str:
        """``Recorded on KERNEL (MACHINE) on DATE -- not from your kernel``."""
        return f"Recorded on {self.kernel} ({self.machine}) on {self.date} \u2014 not from your kernel"

    @property
    def lines(self) -> list[str]:
        """The recorded stdout, one line per item."""
        return self.output.splitlines()

    def text(self) -> str:
        """Label, command and output as plain text (what ``print`` shows)."""
        parts = [self.label, f"$ {self.command}"]
        parts.append(self.output.rstrip("\n") or "(nothing on stdout)")
        if self.stderr.strip():
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        if self.tool:
            parts.append(f"[{self.tool}; regenerate with {self.regenerate}]")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return (f"<div style='border-left:4px solid #9a6700;padding-left:8px'>"
                f"<b style='color:#9a6700'>{html.escape(self.label)}</b>"
                f"<pre>$ {html.escape(self.command)}\n{html.escape(self.output.rstrip() or '(nothing on stdout)')}</pre>"
                + (f"<pre style='color:#6e7781'>[stderr]\n{html.escape(self.stderr.rstrip())}</pre>"
                   if self.stderr.strip() else "")
                + f"<small>{html.escape(self.tool)} &middot; regenerate: <code>{html.escape(self.regenerate)}</code>"
                f"</small></div>")


@dataclass(frozen=True)
class NoRecording:
    """What :func:`show` returns when no recording exists: it says so, and how to make one."""

    name: str
    directory: str

    @property
    def label(self) -> str:
        return (f"No recording yet for {self.name!r} (looked in {self.directory}): nothing is shown "
                f"rather than something invented. Make one with {REGENERATE} on a machine that can "
                "boot Debian's stock kernel under QEMU (see docs and KERNEL_FACTS).")

    def text(self) -> str:
        return self.label

    def __str__(self) -> str:
        return self.label

    def _repr_html_(self) -> str:
        return f"<div style='color:#6e7781'><i>{html.escape(self.label)}</i></div>"


def _from_dict(data: dict, path: str = "") -> Recording:
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise UsageError(f"recording {path or data.get('name', '?')} lacks {', '.join(missing)}",
                         cause="the file was not written by `python -m ebpf_lab.recorded run`",
                         next_step=f"remake it with {REGENERATE}")
    if data.get("format", FORMAT) != FORMAT:
        raise UsageError(f"recording {path} has format {data.get('format')}, this lab reads format {FORMAT}",
                         next_step=f"remake it with {REGENERATE}")
    known = {f for f in Recording.__dataclass_fields__ if f not in ("path", "extra")}
    kwargs = {k: data[k] for k in known if k in data}
    extra = {k: v for k, v in data.items() if k not in known and k != "format"}
    return Recording(**kwargs, path=path, extra=extra)


def load(name: str, directory: str | os.PathLike | None = None) -> Recording:
    """The recording ``name`` (the file ``NAME.json``); raises UsageError if there is none."""
    d = Path(directory) if directory is not None else recordings_dir()
    path = d / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        have = ", ".join(available(d)) or "none"
        raise UsageError(f"no recording named {name!r} in {d}", cause=f"recordings there: {have}",
                         next_step=f"make it with {REGENERATE}, or call show(), which says 'no recording yet'") from None
    except ValueError as exc:
        raise UsageError(f"recording {path} is not valid JSON: {exc}", next_step=f"remake it with {REGENERATE}") from None
    return _from_dict(data, str(path))


def available(directory: str | os.PathLike | None = None) -> list[str]:
    """Names of the recordings on disk, sorted."""
    d = Path(directory) if directory is not None else recordings_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def show(name: str, directory: str | os.PathLike | None = None) -> Recording | NoRecording:
    """For notebooks: the labelled recording, or a :class:`NoRecording` that says so. Never raises
    for a missing recording (a malformed one still raises, with the next step)."""
    d = Path(directory) if directory is not None else recordings_dir()
    if not (d / f"{name}.json").exists():
        return NoRecording(name, str(d))
    return load(name, d)


def record(name: str, argv: list[str], outdir: str | os.PathLike, *, machine: str, program: str,
           tool: str = "", timeout: float = 600, regenerate: str = REGENERATE) -> Recording:
    """Run ``argv`` for real on the running kernel and write ``OUTDIR/NAME.json``.

    Meant to run *on the other kernel* (inside the QEMU guest); the output is
    exactly what the command printed, nothing is edited.
    """
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    u = os.uname()
    data = {
        "format": FORMAT, "name": name, "kernel": u.release, "kernel_version": u.version,
        "machine": machine,
        "recorded_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": tool, "command": shlex.join(argv), "program": program, "output": proc.stdout,
        "stderr": proc.stderr, "exit_code": proc.returncode, "regenerate": regenerate,
    }
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return _from_dict(data, str(out / f"{name}.json"))


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: python -m ebpf_lab.recorded run NAME OUTDIR --machine TEXT --program TEXT "
              "[--tool TEXT] [--regenerate COMMAND] -- ARGV...", file=sys.stderr)
        return 2
    cut = argv.index("--")
    p = argparse.ArgumentParser(prog="python -m ebpf_lab.recorded")
    p.add_argument("action", choices=["run"])
    p.add_argument("name")
    p.add_argument("outdir")
    p.add_argument("--machine", required=True)
    p.add_argument("--program", required=True)
    p.add_argument("--tool", default="")
    p.add_argument("--regenerate", default=REGENERATE, help="the command that remakes this recording")
    opts = p.parse_args(argv[:cut])
    rec = record(opts.name, argv[cut + 1:], opts.outdir, machine=opts.machine, program=opts.program,
                 tool=opts.tool, regenerate=opts.regenerate)
    print(f"wrote {rec.path} (exit {rec.exit_code}, {len(rec.lines)} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
