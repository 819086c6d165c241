"""Function symbols of an ELF binary or library: what a uprobe can attach to.

A uprobe names a file and a function in it, ``uprobe:/usr/bin/bash:readline``.
The functions a file offers are the ``FUNC`` (and ``GNU_IFUNC``) symbols of its
symbol tables. :func:`function_symbols` lists them the way bpftrace 0.17 does
(``bpftrace -l 'uprobe:/usr/bin/bash:*'``):

* both ``.dynsym`` (exported functions) and ``.symtab`` (all functions, when
  the file is not stripped), defined ones only, deduplicated, sorted;
* plus the ``.symtab`` of a separate debug file when one is installed
  (``/usr/lib/debug/.build-id/xx/yyyy.debug``, found by build-id, then by
  ``.gnu_debuglink``), as bcc and gdb look for it: with Debian's
  ``libc6-dbg``, libc offers about 7,000 functions instead of about 3,000;
* names are kept as the tables spell them: ``.dynsym`` names carry no version,
  while a debug ``.symtab`` spells some as ``fclose@@GLIBC_2.2.5`` (default
  version) or ``memcpy@GLIBC_2.2.5`` (an older one). bpftrace lists both
  spellings, and so do we;
* compiler-split fragments (``foo.part.0``) are left out, as bpftrace does.

A library may be named the short way bpftrace and bcc accept, ``libc`` (or
``c``): :func:`resolve_library` finds its path in the ``ldconfig`` cache.

This module only reads files; it needs no root and no bcc.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zlib
from functools import lru_cache
from pathlib import Path

from .errors import UnknownProbeError, UsageError

__all__ = ["function_symbols", "resolve_binary", "resolve_library", "symbol_address"]

DEBUG_ROOT = Path("/usr/lib/debug")
_FUNC_TYPES = ("STT_FUNC", "STT_LOOS", "STT_GNU_IFUNC")  # pyelftools names IFUNC STT_LOOS
_LDCONFIG_LINE = re.compile(r"^\s*(?P<name>\S+)\s+\((?P<flags>[^)]*)\)\s+=>\s+(?P<path>\S+)\s*$")


def _elf():
    from elftools.elf.elffile import ELFFile  # pyelftools: light, but only needed here
    from elftools.elf.sections import SymbolTableSection

    return ELFFile, SymbolTableSection


def _machine_flag() -> str:
    return {"x86_64": "x86-64", "aarch64": "AArch64"}.get(os.uname().machine, os.uname().machine)


@lru_cache(maxsize=1)
def _ldconfig_entries() -> tuple[tuple[str, str, str], ...]:
    exe = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    rows = []
    for line in out.splitlines():
        m = _LDCONFIG_LINE.match(line)
        if m:
            rows.append((m.group("name"), m.group("flags"), m.group("path")))
    return tuple(rows)


def resolve_library(name: str) -> str:
    """The path of a shared library given by its short name, as bcc resolves it.

    ``libc`` or ``c`` -> ``/lib/x86_64-linux-gnu/libc.so.6``: the first entry of
    ``ldconfig -p`` for this machine's architecture whose name starts with
    ``lib<name>.so``. A name that contains ``/`` is returned unchanged.
    Raises UnknownProbeError when no such library is installed.
    """
    if "/" in name:
        return name
    stem = name if name.startswith("lib") else f"lib{name}"
    prefix = f"{stem}.so"
    arch = _machine_flag()
    entries = _ldconfig_entries()
    for soname, flags, path in entries:
        if soname.startswith(prefix) and arch in flags:
            return path
    for soname, _flags, path in entries:  # no arch tag (an unusual ldconfig)
        if soname.startswith(prefix):
            return path
    raise UnknownProbeError(
        f"no shared library called {name!r} ({prefix}*) in the ldconfig cache",
        probe=name,
        cause="the library is not installed, or its name is misspelt",
        next_step="give the full path (uprobe:/lib/x86_64-linux-gnu/libc.so.6:malloc), "
        "or see what is installed with `ldconfig -p`",
    )


def resolve_binary(target: str) -> str:
    """The file a uprobe target names: a path, a command on PATH, or a library name.

    ``/usr/bin/bash`` stays as it is; ``bash`` becomes ``/usr/bin/bash`` (found on
    PATH); ``libc`` becomes ``/lib/x86_64-linux-gnu/libc.so.6`` (see
    :func:`resolve_library`). Raises UnknownProbeError when nothing matches.
    """
    if "/" in target:
        if not os.path.isfile(target):
            raise UnknownProbeError(
                f"uprobe target file {target!r} does not exist",
                probe=target,
                cause="a typo in the path, or the program is not installed here",
                next_step="check the path with `ls -l`; find a program with `which NAME`",
            )
        return target
    found = shutil.which(target)
    if found:
        return os.path.realpath(found) if os.path.islink(found) else found
    return resolve_library(target)


def _build_id(elf) -> str | None:
    for sec in elf.iter_sections():
        if sec.header["sh_type"] == "SHT_NOTE":
            for note in sec.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    return note["n_desc"]
    return None


def _debuglink(elf) -> tuple[str, int] | None:
    sec = elf.get_section_by_name(".gnu_debuglink")
    if sec is None:
        return None
    data = sec.data()
    end = data.find(b"\0")
    if end <= 0:
        return None
    name = data[:end].decode("utf-8", "replace")
    crc_at = (end + 4) & ~3
    crc = int.from_bytes(data[crc_at:crc_at + 4], "little" if elf.little_endian else "big")
    return name, crc


def _crc_ok(path: Path, crc: int) -> bool:
    value = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                value = zlib.crc32(chunk, value)
    except OSError:
        return False
    return value & 0xFFFFFFFF == crc


def debug_file(path: str, elf=None) -> Path | None:
    """The separate debug file of ``path``, if one is installed (build-id first, then debuglink)."""
    ELFFile, _ = _elf()
    if elf is None:
        with open(path, "rb") as fh:
            return debug_file(path, ELFFile(fh))
    bid = _build_id(elf)
    if bid and len(bid) > 2:
        cand = DEBUG_ROOT / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
        if cand.is_file():
            return cand
    link = _debuglink(elf)
    if link:
        name, crc = link
        here = Path(path).resolve().parent
        for cand in (here / name, here / ".debug" / name, DEBUG_ROOT / here.relative_to("/") / name):
            if cand.is_file() and cand.resolve() != Path(path).resolve() and _crc_ok(cand, crc):
                return cand
    return None


def _symbols(path: str | Path) -> dict[str, int]:
    """name -> st_value of defined function symbols in every symbol table of one file."""
    ELFFile, SymbolTableSection = _elf()
    out: dict[str, int] = {}
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        for sec in elf.iter_sections():
            if not isinstance(sec, SymbolTableSection):
                continue
            for sym in sec.iter_symbols():
                if sym["st_info"]["type"] not in _FUNC_TYPES or sym["st_shndx"] == "SHN_UNDEF":
                    continue
                if not sym.name or ".part." in sym.name:
                    continue
                out.setdefault(sym.name, sym["st_value"])
    return out


@lru_cache(maxsize=32)
def _all_symbols(path: str, _mtime: float) -> tuple[dict[str, int], str | None]:
    ELFFile, _ = _elf()
    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            dbg = debug_file(path, elf)
    except OSError as exc:
        raise UnknownProbeError(f"cannot read {path}: {exc.strerror}", probe=path) from exc
    except Exception as exc:  # elftools raises ELFError and friends on non-ELF files
        raise UsageError(
            f"{path} is not an ELF binary or library ({exc})",
            cause="uprobes attach to compiled programs and shared libraries, not scripts",
            next_step="give a compiled program such as /usr/bin/bash, or a library such as libc",
        ) from exc
    syms = _symbols(path)
    if dbg is not None:
        for name, value in _symbols(dbg).items():
            syms.setdefault(name, value)
    return syms, str(dbg) if dbg else None


def _load(path: str) -> tuple[dict[str, int], str | None]:
    real = resolve_binary(path)
    return _all_symbols(real, os.stat(real).st_mtime)


def function_symbols(path: str) -> list[str]:
    """The functions a uprobe can attach to in ``path``, sorted, as bpftrace lists them.

    ``path`` is a file (``/usr/bin/bash``), a command on PATH (``bash``) or a
    library's short name (``libc``).

    >>> 'readline' in function_symbols('/usr/bin/bash')     # doctest: +SKIP
    True
    """
    return sorted(_load(path)[0])


def debug_file_used(path: str) -> str | None:
    """The separate debug file whose symbols :func:`function_symbols` added, or None."""
    return _load(path)[1]


def _vaddr_to_offset(path: str, vaddr: int) -> int:
    ELFFile, _ = _elf()
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD":
                continue
            start = seg["p_vaddr"]
            if start <= vaddr < start + seg["p_filesz"]:
                return vaddr - start + seg["p_offset"]
    raise UsageError(f"address {vaddr:#x} is in no loadable segment of {path}")


def symbol_address(path: str, name: str) -> int:
    """File offset of function ``name`` in ``path``: where a uprobe is placed.

    This is what the kernel's uprobe interface wants (``PATH:0xOFFSET``). bcc's
    ``attach_uprobe(name=path, addr=...)`` expects the symbol's *virtual*
    address instead and converts it itself; for Debian's binaries and libraries
    both are equal, but pass ``sym=name`` to bcc when you can.

    Versioned names (``fclose@@GLIBC_2.2.5``) are accepted as listed. Raises
    UnknownProbeError with suggestions when ``name`` is not a function there.
    """
    real = resolve_binary(path)
    syms, _ = _load(real)
    value = syms.get(name)
    if value is None:
        for cand, v in syms.items():  # "fclose" also finds "fclose@@GLIBC_2.2.5"
            if cand.split("@", 1)[0] == name:
                value = v
                break
    if value is None:
        import difflib

        close = difflib.get_close_matches(name, list(syms), n=3, cutoff=0.6)
        raise UnknownProbeError(
            f"{real} has no function called {name!r}",
            probe=f"uprobe:{real}:{name}",
            suggestions=tuple(f"uprobe:{real}:{c}" for c in close),
            cause="a typo, or the function is static and the file is stripped (no debug symbols)",
        )
    return _vaddr_to_offset(real, value)
