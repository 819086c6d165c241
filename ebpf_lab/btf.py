"""A pure-Python reader of BTF, the kernel's own type information.

BTF (BPF Type Format) is how tools like bpftrace know a function's argument
names and a struct's layout without kernel headers: the kernel ships a
description of its own types in ``/sys/kernel/btf/vmlinux``. This module reads
that file with nothing but :mod:`struct` -- no bpftool, no root -- and answers
the questions of lesson 04 (``notebooks/04_btf.ipynb``)::

    >>> from ebpf_lab import btf
    >>> b = btf.load()                                   # doctest: +SKIP
    >>> b.struct_layout("path")                          # doctest: +SKIP
      member                type  offset  size  bit_offset  bitfield_size
    0    mnt  struct vfsmount *       0     8           0              0
    1 dentry    struct dentry *       8     8          64              0
    >>> b.func_args("vfs_open")       # what `bpftrace -lv 'kfunc:vfs_open'` shows

The format (``include/uapi/linux/btf.h``): a header, then a type section of
variable-length records (type ids start at 1; 0 is ``void``), then a string
section. ``dump_raw(type_id)`` prints a type exactly as ``bpftool btf dump``
does, which is how the tests prove this reader right.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import SetupError, UnknownProbeError, UsageError

__all__ = ["Btf", "BtfType", "KINDS", "load"]

VMLINUX = "/sys/kernel/btf/vmlinux"
MAGIC = 0xEB9F

KINDS = {
    0: "UNKN", 1: "INT", 2: "PTR", 3: "ARRAY", 4: "STRUCT", 5: "UNION", 6: "ENUM", 7: "FWD",
    8: "TYPEDEF", 9: "VOLATILE", 10: "CONST", 11: "RESTRICT", 12: "FUNC", 13: "FUNC_PROTO",
    14: "VAR", 15: "DATASEC", 16: "FLOAT", 17: "DECL_TAG", 18: "TYPE_TAG", 19: "ENUM64",
}
_REF_KINDS = {"PTR", "TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG"}
_MODIFIERS = {"CONST": "const", "VOLATILE": "volatile", "RESTRICT": "restrict"}
_FUNC_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_VAR_LINKAGE = {0: "static", 1: "global", 2: "extern"}

# bytes of kind-specific data after the 12-byte common header, per vlen item or fixed
_EXTRA_FIXED = {"INT": 4, "ARRAY": 12, "VAR": 4, "DECL_TAG": 4}
_EXTRA_PER_ITEM = {"STRUCT": 12, "UNION": 12, "ENUM": 8, "FUNC_PROTO": 8, "DATASEC": 12, "ENUM64": 12}


@dataclass(frozen=True)
class BtfType:
    """One type record: ``id``, ``kind`` (``"STRUCT"``...), ``name`` ('' if anonymous),
    ``vlen``, ``kind_flag``, ``size_or_type`` (size for sized kinds, else the
    referenced type id) and ``offset`` of its record in the type section."""

    id: int
    kind: str
    name: str
    vlen: int
    kind_flag: bool
    size_or_type: int
    offset: int


class Btf:
    """The types of one BTF blob. Build with :func:`load` or ``Btf(data)``."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise UsageError("not a BTF file: too short")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != MAGIC:
            raise UsageError(f"not a BTF file: magic {magic:#x}, expected {MAGIC:#x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self.version = version
        self._types = memoryview(data)[hdr_len + type_off: hdr_len + type_off + type_len]
        self._strings = bytes(data[hdr_len + str_off: hdr_len + str_off + str_len])
        self.types: list[BtfType | None] = [None]  # id 0 is void
        self._by_name: dict[str, list[int]] = {}
        self._index()

    # ---- reading ---------------------------------------------------------
    def _str(self, off: int) -> str:
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode("utf-8", "replace")

    def _index(self) -> None:
        buf, pos, end = self._types, 0, len(self._types)
        unpack = struct.Struct("<III").unpack_from
        strings, by_name, types = self._strings, self._by_name, self.types
        while pos < end:
            name_off, info, size_or_type = unpack(buf, pos)
            kind = KINDS.get((info >> 24) & 0x1F, "UNKN")
            vlen = info & 0xFFFF
            name = strings[name_off: strings.index(b"\0", name_off)].decode("utf-8", "replace") if name_off else ""
            tid = len(types)
            types.append(BtfType(tid, kind, name, vlen, bool(info >> 31), size_or_type, pos))
            if name:
                by_name.setdefault(name, []).append(tid)
            pos += 12 + _EXTRA_FIXED.get(kind, 0) + _EXTRA_PER_ITEM.get(kind, 0) * vlen

    def __len__(self) -> int:
        """Number of types, not counting void."""
        return len(self.types) - 1

    def type(self, type_id: int) -> BtfType:
        if not 0 < type_id < len(self.types):
            raise UsageError(f"no BTF type with id {type_id}", next_step=f"ids run from 1 to {len(self)}")
        return self.types[type_id]

    def find(self, name: str, kind: str | None = None) -> list[BtfType]:
        """All types with this exact name (optionally of one kind: ``"STRUCT"``, ``"FUNC"``...)."""
        found = [self.types[i] for i in self._by_name.get(name, ())]
        return [t for t in found if kind is None or t.kind == kind]

    def _one(self, name: str, kinds: tuple[str, ...], what: str) -> BtfType:
        for kind in kinds:
            found = self.find(name, kind)
            if found:
                return found[0]
        import difflib  # noqa: PLC0415 - only on the error path

        names = [n for n, ids in self._by_name.items() if any(self.types[i].kind in kinds for i in ids)]
        close = difflib.get_close_matches(name, names, n=3)
        raise UnknownProbeError(f"this kernel's BTF has no {what} named {name!r}", probe=name,
                                suggestions=tuple(close), next_step=None if close else
                                f"list names with ebpf_lab.btf.load().names({kinds[0]!r})")

    def names(self, kind: str) -> list[str]:
        """Sorted names of every type of one kind (``"STRUCT"``, ``"FUNC"``, ``"ENUM"``...)."""
        return sorted({t.name for t in self.types[1:] if t.kind == kind and t.name})

    def _extra(self, t: BtfType, fmt: str, index: int = 0, item: int = 0):
        return struct.unpack_from(fmt, self._types, t.offset + 12 + item * index)

    def members(self, t: BtfType) -> list[tuple[str, int, int, int]]:
        """Struct/union members as (name, type_id, bit_offset, bitfield_size)."""
        out = []
        for i in range(t.vlen):
            name_off, tid, off = self._extra(t, "<III", i, 12)
            bitfield = (off >> 24) if t.kind_flag else 0
            bit_off = (off & 0xFFFFFF) if t.kind_flag else off
            out.append((self._str(name_off) if name_off else "", tid, bit_off, bitfield))
        return out

    def params(self, t: BtfType) -> list[tuple[str, int]]:
        """A FUNC_PROTO's parameters as (name, type_id)."""
        return [(self._str(n) if n else "", tid) for n, tid in (self._extra(t, "<II", i, 8) for i in range(t.vlen))]

    def enumerators(self, t: BtfType) -> list[tuple[str, int]]:
        """An ENUM or ENUM64's (name, value) pairs, signed when the enum is."""
        out = []
        for i in range(t.vlen):
            if t.kind == "ENUM":
                name_off, raw = self._extra(t, "<II", i, 8)
                val = raw - (1 << 32) if t.kind_flag and raw >= 1 << 31 else raw
            else:
                name_off, lo, hi = self._extra(t, "<III", i, 12)
                val = hi << 32 | lo
                if t.kind_flag and val >= 1 << 63:
                    val -= 1 << 64
            out.append((self._str(name_off), val))
        return out

    # ---- sizes and C names -------------------------------------------------
    def resolve(self, type_id: int) -> int:
        """Follow typedefs and modifiers to the underlying type id."""
        while type_id and self.types[type_id].kind in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
            type_id = self.types[type_id].size_or_type
        return type_id

    def sizeof(self, type_id: int) -> int:
        """Size in bytes of a type, as the C compiler sees it."""
        tid = self.resolve(type_id)
        if tid == 0:
            return 0
        t = self.types[tid]
        if t.kind == "PTR":
            return 8
        if t.kind == "ARRAY":
            elem, _index, nelems = self._extra(t, "<III")
            return nelems * self.sizeof(elem)
        if t.kind in ("INT", "STRUCT", "UNION", "ENUM", "ENUM64", "FLOAT", "DATASEC"):
            return t.size_or_type
        return 0

    def c_name(self, type_id: int, inner: str = "") -> str:
        """The C spelling of a type, bpftrace style: ``const struct path *``, ``char[16]``."""
        if type_id == 0:
            return ("void " + inner).strip() if inner else "void"
        t = self.types[type_id]
        if t.kind in ("STRUCT", "UNION", "ENUM", "ENUM64"):
            base = f"{'union' if t.kind == 'UNION' else 'enum' if t.kind.startswith('ENUM') else 'struct'} " \
                   f"{t.name or '(anon)'}"
        elif t.kind == "FWD":
            base = f"{'union' if t.kind_flag else 'struct'} {t.name}"
        elif t.kind in ("INT", "FLOAT", "TYPEDEF"):
            base = t.name
        elif t.kind in _MODIFIERS:
            return f"{_MODIFIERS[t.kind]} {self.c_name(t.size_or_type, inner)}"
        elif t.kind == "TYPE_TAG":
            return self.c_name(t.size_or_type, inner)
        elif t.kind == "PTR":
            target = self.types[self.resolve_modifiers(t.size_or_type)]
            if target is not None and target.kind == "FUNC_PROTO":
                return self.c_name(t.size_or_type, f"(*{inner})")
            return self.c_name(t.size_or_type, ("*" + inner))
        elif t.kind == "ARRAY":
            elem, _index, nelems = self._extra(t, "<III")
            return self.c_name(elem, f"{inner}[{nelems}]")
        elif t.kind == "FUNC_PROTO":
            args = ", ".join(self.c_name(tid) for _n, tid in self.params(t)) or "void"
            return f"{self.c_name(t.size_or_type)} {inner}({args})"
        else:
            base = t.name or "(anon)"
        if not inner:
            return base
        return f"{base} {inner}" if inner.startswith("*") or inner.startswith("(") else f"{base}{inner}"

    def resolve_modifiers(self, type_id: int) -> int:
        while type_id and self.types[type_id].kind in ("CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
            type_id = self.types[type_id].size_or_type
        return type_id

    # ---- questions a learner asks -------------------------------------------
    def struct_layout(self, name: str):
        """A struct's (or union's) members: ``member``, ``type``, ``offset`` (bytes),
        ``size`` (bytes), ``bit_offset``, ``bitfield_size`` -- the layout pahole prints."""
        import pandas as pd  # noqa: PLC0415

        t = self._one(name, ("STRUCT", "UNION"), "struct or union")
        rows = [{"member": m or "(anon)", "type": self.c_name(tid), "offset": bit_off // 8,
                 "size": self.sizeof(tid), "bit_offset": bit_off, "bitfield_size": bits}
                for m, tid, bit_off, bits in self.members(t)]
        df = pd.DataFrame(rows, columns=["member", "type", "offset", "size", "bit_offset", "bitfield_size"])
        df.attrs.update(name=name, kind=t.kind.lower(), size=t.size_or_type, type_id=t.id)
        return df

    def func_args(self, name: str):
        """A kernel function's arguments as ``name``, ``type`` rows, and a last row
        ``retval`` with the return type: what ``bpftrace -lv 'kfunc:NAME'`` prints."""
        import pandas as pd  # noqa: PLC0415

        func = self._one(name, ("FUNC",), "function")
        proto = self.types[func.size_or_type]
        rows = [{"name": n, "type": self.c_name(tid)} for n, tid in self.params(proto)]
        if proto.size_or_type:
            rows.append({"name": "retval", "type": self.c_name(proto.size_or_type)})
        df = pd.DataFrame(rows, columns=["name", "type"])
        df.attrs.update(function=name, type_id=func.id, linkage=_FUNC_LINKAGE.get(func.vlen, str(func.vlen)))
        return df

    def enum_values(self, name: str):
        """An enum's enumerators as ``name``, ``value`` rows."""
        import pandas as pd  # noqa: PLC0415

        t = self._one(name, ("ENUM", "ENUM64"), "enum")
        return pd.DataFrame(self.enumerators(t), columns=["name", "value"])

    def enumerator(self, name: str) -> int:
        """The value of one enumerator (``TASK_COMM_LEN``, ``BPF_MAP_TYPE_RINGBUF``...)."""
        if not hasattr(self, "_enumerators"):
            table: dict[str, int] = {}
            for t in self.types[1:]:
                if t.kind in ("ENUM", "ENUM64"):
                    for n, v in self.enumerators(t):
                        table.setdefault(n, v)
            self._enumerators = table
        try:
            return self._enumerators[name]
        except KeyError:
            import difflib  # noqa: PLC0415

            raise UnknownProbeError(f"no enumerator named {name!r} in this kernel's BTF", probe=name,
                                    suggestions=tuple(difflib.get_close_matches(name, self._enumerators, 3))) from None

    def typedef_chain(self, name: str) -> list[str]:
        """How a typedef resolves, step by step: ``['u32', '__u32', 'unsigned int']``."""
        t = self._one(name, ("TYPEDEF",), "typedef")
        chain = [t.name]
        tid = t.size_or_type
        while tid and self.types[tid].kind == "TYPEDEF":
            chain.append(self.types[tid].name)
            tid = self.types[tid].size_or_type
        chain.append(self.c_name(tid))
        return chain

    # ---- bpftool's raw dump, for checking --------------------------------
    def dump_raw(self, type_id: int) -> str:
        """One type exactly as ``bpftool btf dump file ... format raw`` prints it."""
        t = self.type(type_id)
        name = f"'{t.name or '(anon)'}'"
        head = f"[{t.id}] {t.kind} {name}"
        lines = []
        k = t.kind
        if k == "INT":
            (enc,) = self._extra(t, "<I")
            encoding = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}.get((enc >> 24) & 0xF, "UNKN")
            head += f" size={t.size_or_type} bits_offset={(enc >> 16) & 0xFF} nr_bits={enc & 0xFF} encoding={encoding}"
        elif k in _REF_KINDS:
            head += f" type_id={t.size_or_type}"
        elif k == "ARRAY":
            elem, index, nelems = self._extra(t, "<III")
            head += f" type_id={elem} index_type_id={index} nr_elems={nelems}"
        elif k in ("STRUCT", "UNION"):
            head += f" size={t.size_or_type} vlen={t.vlen}"
            for m, tid, bit_off, bits in self.members(t):
                line = f"\t'{m or '(anon)'}' type_id={tid} bits_offset={bit_off}"
                lines.append(line + (f" bitfield_size={bits}" if bits else ""))
        elif k in ("ENUM", "ENUM64"):
            head += f" encoding={'SIGNED' if t.kind_flag else 'UNSIGNED'} size={t.size_or_type} vlen={t.vlen}"
            suffix = ("LL" if t.kind_flag else "ULL") if k == "ENUM64" else ""
            lines += [f"\t'{n}' val={v}{suffix}" for n, v in self.enumerators(t)]
        elif k == "FWD":
            head += f" fwd_kind={'union' if t.kind_flag else 'struct'}"
        elif k == "FUNC":
            head += f" type_id={t.size_or_type} linkage={_FUNC_LINKAGE.get(t.vlen, 'UNKN')}"
        elif k == "FUNC_PROTO":
            head += f" ret_type_id={t.size_or_type} vlen={t.vlen}"
            lines += [f"\t'{n or '(anon)'}' type_id={tid}" for n, tid in self.params(t)]
        elif k == "VAR":
            (linkage,) = self._extra(t, "<I")
            head += f" type_id={t.size_or_type}, linkage={_VAR_LINKAGE.get(linkage, 'UNKN')}"
        elif k == "DATASEC":
            head += f" size={t.size_or_type} vlen={t.vlen}"
            for i in range(t.vlen):
                vid, off, size = self._extra(t, "<III", i, 12)
                v = self.types[vid]
                lines.append(f"\ttype_id={vid} offset={off} size={size} ({v.kind} '{v.name or '(anon)'}')")
        elif k == "FLOAT":
            head += f" size={t.size_or_type}"
        elif k == "DECL_TAG":
            (idx,) = self._extra(t, "<i")
            head += f" type_id={t.size_or_type} component_idx={idx}"
        return "\n".join([head, *lines])


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int) -> Btf:
    return Btf(Path(path).read_bytes())


def load(path: str = VMLINUX) -> Btf:
    """Read a BTF file (default: the running kernel's ``/sys/kernel/btf/vmlinux``).

    Cached per file and its size/mtime, so a different kernel never gets stale types.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SetupError(f"no BTF at {path}", cause="the kernel was built without CONFIG_DEBUG_INFO_BTF",
                         next_step="use tracepoints (their formats describe arguments) or a kernel with BTF") from None
    except PermissionError:
        raise SetupError(f"cannot read {path}", next_step="run as root or make the file readable") from None
    return _load_cached(str(p), st.st_mtime_ns, st.st_size)
