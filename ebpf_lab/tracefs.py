"""Tracepoint format files from tracefs, parsed into typed fields.

Every tracepoint describes the record it hands to a probe in a small text file,
``/sys/kernel/tracing/events/<group>/<name>/format``::

    name: sys_enter_openat
    ID: 782
    format:
            field:unsigned short common_type;  offset:0;  size:2;  signed:0;
            ...
            field:int __syscall_nr;            offset:8;  size:4;  signed:1;
            field:const char * filename;       offset:24; size:8;  signed:0;

    print fmt: "dfd: 0x%08lx, filename: 0x%08lx, ..."

:func:`parse_format` turns that text into a :class:`TracepointFormat` whose
``fields`` are what bpftrace calls ``args->...``. The first block (``common_*``)
is the header every event shares; it is kept apart in ``common_fields``.

Parsing is pure (text in, dataclasses out). Only :func:`find_tracefs`,
:func:`read_format` and :func:`available_events` look at the machine, and they
only read files.

Two kinds of field need care:

* fixed arrays, ``char comm[16]``: ``type`` is the element type (``char``) and
  ``array_len`` the element count (``0`` for a trailing ``[]``);
* ``__data_loc char[] filename``: a variable-length value stored after the
  fixed part of the record. The field itself is 4 bytes holding
  ``(length << 16) | offset``; :meth:`Field.data_loc` unpacks it.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PrivilegeError, SetupError, UnknownProbeError

__all__ = [
    "Field",
    "TracepointFormat",
    "available_events",
    "find_tracefs",
    "parse_field_decl",
    "parse_format",
    "read_format",
]

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

_FIELD_RE = re.compile(
    r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>[01]);)?"
)
_DECL_RE = re.compile(r"^(?P<type>.*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<len>[^\]]*)\])?\s*$")


@dataclass(frozen=True)
class Field:
    """One field of a tracepoint record, as the format file declares it.

    ``type`` is the C type as written (``const char *``, ``__data_loc char[]``,
    ``char`` for ``char comm[16]``); ``array_len`` is the element count of a
    fixed array (``None`` when the field is not an array). ``decl`` is the
    declaration exactly as the kernel wrote it: bpftrace's ``-lv`` prints it.
    """

    name: str
    type: str
    offset: int
    size: int
    signed: bool
    array_len: int | None = None
    is_common: bool = False
    decl: str = ""

    @property
    def is_data_loc(self) -> bool:
        """True for ``__data_loc`` (variable length, stored after the record) fields."""
        return self.type.startswith("__data_loc") or self.type.startswith("__rel_loc")

    @property
    def is_string(self) -> bool:
        """True when the field holds text: ``char[N]``, ``__data_loc char[]`` or ``char *``."""
        base = self.type.replace("__data_loc", "").replace("const", "").strip()
        return base in ("char", "char[]", "char *", "unsigned char *")

    @staticmethod
    def data_loc(value: int) -> tuple[int, int]:
        """Unpack a ``__data_loc`` field's 32-bit value into ``(offset, length)``.

        The offset counts from the start of the record; the length includes
        the terminating NUL of a string.
        """
        return value & 0xFFFF, (value >> 16) & 0xFFFF


@dataclass(frozen=True)
class TracepointFormat:
    """A parsed ``format`` file: the record layout of one tracepoint.

    ``fields`` are the tracepoint's own arguments, in order (bpftrace's
    ``args->NAME``); ``common_fields`` are the shared header (``common_pid``...).
    """

    group: str | None
    name: str
    id: int | None
    fields: tuple[Field, ...]
    common_fields: tuple[Field, ...] = ()
    print_fmt: str = ""

    @property
    def probe(self) -> str:
        """The probe as bpftrace spells it: ``tracepoint:GROUP:NAME``."""
        return f"tracepoint:{self.group}:{self.name}" if self.group else f"tracepoint:{self.name}"

    def field(self, name: str) -> Field:
        """The argument called ``name``; raises UnknownProbeError with suggestions."""
        for f in self.fields + self.common_fields:
            if f.name == name:
                return f
        names = [f.name for f in self.fields]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        raise UnknownProbeError(
            f"{self.probe} has no field {name!r}",
            probe=self.probe,
            suggestions=tuple(close),
            cause=f"its fields are: {', '.join(names) or '(none)'}",
        )

    @property
    def record_size(self) -> int:
        """Size in bytes of the fixed part of the record (end of the last field)."""
        all_fields = self.common_fields + self.fields
        return max((f.offset + f.size for f in all_fields), default=0)


def parse_field_decl(decl: str) -> tuple[str, str, int | None]:
    """Split a C declaration from a format file into ``(type, name, array_len)``.

    >>> parse_field_decl("const char * filename")
    ('const char *', 'filename', None)
    >>> parse_field_decl("char comm[16]")
    ('char', 'comm', 16)
    >>> parse_field_decl("__data_loc char[] filename")
    ('__data_loc char[]', 'filename', None)
    """
    m = _DECL_RE.match(decl.strip())
    if m is None:
        raise ValueError(f"cannot read the field declaration {decl!r}")
    array_len: int | None = None
    if m.group("len") is not None:
        text = m.group("len").strip()
        if text == "":
            array_len = 0
        else:
            try:
                array_len = int(text, 0)
            except ValueError:
                array_len = None
    return m.group("type").strip(), m.group("name"), array_len


def parse_format(text: str, group: str | None = None, name: str | None = None) -> TracepointFormat:
    """Parse the text of a tracefs ``format`` file.

    ``group`` is not in the file (it is the directory name), so pass it when you
    know it. ``name`` overrides the file's ``name:`` line. Raises ``ValueError``
    when the text is not a format file.

    >>> fmt = parse_format(open('/sys/kernel/tracing/events/syscalls/'   # doctest: +SKIP
    ...                         'sys_enter_openat/format').read(), group='syscalls')
    >>> [f.name for f in fmt.fields]                                    # doctest: +SKIP
    ['__syscall_nr', 'dfd', 'filename', 'flags', 'mode']
    """
    file_name: str | None = None
    tp_id: int | None = None
    fields: list[Field] = []
    common: list[Field] = []
    print_fmt = ""
    seen_format = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("name:") and file_name is None:
            file_name = stripped[5:].strip()
        elif stripped.startswith("ID:"):
            try:
                tp_id = int(stripped[3:].strip())
            except ValueError:
                tp_id = None
        elif stripped.startswith("format:"):
            seen_format = True
        elif stripped.startswith("print fmt:"):
            print_fmt = stripped[len("print fmt:"):].strip()
        elif stripped.startswith("field:"):
            m = _FIELD_RE.match(stripped)
            if m is None:
                raise ValueError(f"cannot read the format line {stripped!r}")
            decl = m.group("decl").strip()
            ftype, fname, alen = parse_field_decl(decl)
            is_common = fname.startswith("common_")
            f = Field(
                name=fname, type=ftype, offset=int(m.group("offset")), size=int(m.group("size")),
                signed=m.group("signed") == "1", array_len=alen, is_common=is_common, decl=decl,
            )
            (common if is_common else fields).append(f)
    if file_name is None and name is None or not seen_format:
        raise ValueError("this text is not a tracefs format file (no 'name:' or 'format:' line)")
    return TracepointFormat(
        group=group, name=name or file_name or "", id=tp_id,
        fields=tuple(fields), common_fields=tuple(common), print_fmt=print_fmt,
    )


def find_tracefs() -> Path:
    """Where tracefs is mounted: ``/sys/kernel/tracing`` or ``/sys/kernel/debug/tracing``.

    Raises SetupError (with the mount command) when neither is usable.
    """
    for cand in TRACEFS_CANDIDATES:
        try:
            if (cand / "events").is_dir() or (cand / "available_events").exists():
                return cand
        except PermissionError:
            continue
    if not os.access("/sys/kernel", os.R_OK):
        raise PrivilegeError("cannot read /sys/kernel, where tracefs lives")
    raise SetupError(
        "tracefs is not mounted at /sys/kernel/tracing nor at /sys/kernel/debug/tracing",
        cause="the tracing filesystem was not mounted at boot (common in containers and small VMs)",
        next_step="mount -t tracefs nodev /sys/kernel/tracing (and mount -t debugfs nodev "
        "/sys/kernel/debug for bpftrace), or run make setup",
    )


def available_events(root: Path | None = None) -> list[str]:
    """Every tracepoint the kernel can attach to, as ``group:name``, sorted.

    Read from ``available_events`` (what bpftrace lists); falls back to the
    ``events/`` directories, without the ``ftrace`` group, whose entries are
    internal formats that cannot be attached to.
    """
    root = root or find_tracefs()
    try:
        text = (root / "available_events").read_text()
        names = {ln.strip() for ln in text.splitlines() if ln.strip()}
    except PermissionError as exc:
        raise PrivilegeError(f"cannot read {root / 'available_events'}: {exc.strerror}") from exc
    except OSError:
        names = set()
        events = root / "events"
        for gdir in events.iterdir() if events.is_dir() else ():
            if not gdir.is_dir() or gdir.name == "ftrace":
                continue
            for edir in gdir.iterdir():
                if (edir / "format").exists():
                    names.add(f"{gdir.name}:{edir.name}")
    return sorted(names)


def read_format(group: str, name: str) -> TracepointFormat:
    """Read and parse the format of ``tracepoint:GROUP:NAME`` on this machine.

    Raises UnknownProbeError with "did you mean" suggestions when it does not exist.
    """
    root = find_tracefs()
    path = root / "events" / group / name / "format"
    try:
        text = path.read_text()
    except FileNotFoundError:
        probe = f"tracepoint:{group}:{name}"
        try:
            pool = available_events(root)
        except Exception:  # noqa: BLE001 - suggestions are a courtesy
            pool = []
        wanted = f"{group}:{name}"
        close = difflib.get_close_matches(wanted, pool, n=3, cutoff=0.6)
        if not close:
            close = [e for e in pool if e.split(":", 1)[1] == name][:3]
        raise UnknownProbeError(
            f"there is no tracepoint {probe} on this kernel",
            probe=probe,
            suggestions=tuple(f"tracepoint:{c}" for c in close),
            cause="a typo in the group or the name, or a kernel built without it",
        ) from None
    except PermissionError as exc:
        raise PrivilegeError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_format(text, group=group, name=name)
