"""Syscall numbers and names for the *running* kernel.

``raw_syscalls:sys_enter`` and a syscall counter give numbers (``id=257``);
people want names (``openat``). The mapping belongs to the kernel you are on,
so this module reads it from that kernel instead of trusting a list or the
installed headers (Debian's are for 6.1; this lab may run on 6.18).

How: at boot, ftrace fills in one ``struct syscall_metadata`` per syscall
(``{const char *name; int syscall_nr; ...}``) in the ``__syscalls_metadata``
section, between the symbols ``__start_syscalls_metadata`` and
``__stop_syscalls_metadata`` of ``/proc/kallsyms``. A tiny BPF program (bcc)
reads those structs with ``bpf_probe_read_kernel`` once, when this process
itself calls ``getppid()``, and writes ``(nr, name)`` pairs into a BPF array
that Python then reads. Member offsets come from the kernel's BTF. The result
is cached per kernel and boot in ``~/.cache/ebpf-lab/syscalls-RELEASE-BOOTID.json``.

When that is impossible (not root, no bcc, no kallsyms) the table falls back to
the UAPI header ``/usr/include/x86_64-linux-gnu/asm/unistd_64.h``, and says so
in ``df.attrs["source"]``.

    >>> from ebpf_lab.syscalls import syscall_name, syscall_nr
    >>> syscall_name(257), syscall_nr("getppid")          # doctest: +SKIP
    ('openat', 110)
"""

from __future__ import annotations

import difflib
import json
import os
import re
from functools import lru_cache
from pathlib import Path

from ._cache import cache_dir
from .errors import EbpfLabError, SetupError, UnknownProbeError, UsageError

__all__ = [
    "cmp_immediates", "consistent_entries", "read_kernel_syscalls", "rip_relative_loads",
    "syscall_name", "syscall_nr", "syscall_table",
]

UNISTD_HEADERS = (
    "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    "/usr/include/asm/unistd_64.h",
    "/usr/include/asm-generic/unistd.h",
)
_DEFINE_RE = re.compile(r"^#define\s+__NR_(\w+)\s+(\d+)\s*$", re.M)
MAX_ENTRIES = 1024
_CODE_BYTES = 96

_BPF_TEXT = r"""
struct config {
    u64 mode;    /* 0 idle, 1 read code bytes at addr, 2 read the metadata array */
    u64 addr;    /* 1: a function's address; 2: address of the variable holding the array */
    u64 count;   /* 2: how many entries to read */
};
struct entry {
    s32 nr;
    s32 ok;
    char name[64];
};
struct code {
    u8 bytes[CODE_BYTES];
};
BPF_ARRAY(config, struct config, 1);
BPF_ARRAY(code, struct code, 1);
BPF_ARRAY(out, struct entry, MAXN);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET_TGID)
        return 0;
    u32 zero = 0;
    struct config *c = config.lookup(&zero);
    if (!c || !c->mode)
        return 0;
    if (c->mode == 1) {
        struct code *k = code.lookup(&zero);
        if (k)
            bpf_probe_read_kernel(k->bytes, sizeof(k->bytes), (void *)c->addr);
        c->mode = 0;
        return 0;
    }
    u64 array = 0;
    bpf_probe_read_kernel(&array, sizeof(array), (void *)c->addr);
    u64 count = c->count;
    c->mode = 0;
    if (!array)
        return 0;
    for (u32 i = 0; i < MAXN; i++) {
        if (i >= count)
            break;
        u32 key = i;
        struct entry *e = out.lookup(&key);
        if (!e)
            break;
        u64 meta = 0, name = 0;
        s32 nr = -1;
        e->ok = 0;
        bpf_probe_read_kernel(&meta, sizeof(meta), (void *)(array + 8ULL * i));
        if (!meta)
            continue;
        bpf_probe_read_kernel(&name, sizeof(name), (void *)(meta + NAME_OFF));
        bpf_probe_read_kernel(&nr, sizeof(nr), (void *)(meta + NR_OFF));
        e->nr = nr;
        if (name && bpf_probe_read_kernel_str(e->name, sizeof(e->name), (void *)name) > 0)
            e->ok = 1;
    }
    return 0;
}
"""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def cache_path() -> Path:
    """Where the table of this kernel and boot is cached."""
    return cache_dir() / f"syscalls-{os.uname().release}-{_boot_id()}.json"


def _kallsyms(*names: str) -> dict[str, int]:
    wanted = set(names)
    found: dict[str, int] = {}
    with open("/proc/kallsyms", encoding="ascii", errors="replace") as fh:
        for line in fh:
            bits = line.split()
            if len(bits) >= 3 and bits[2] in wanted:
                found[bits[2]] = int(bits[0], 16)
    return found


def _metadata_offsets() -> tuple[int, int]:
    """Offsets of ``name`` and ``syscall_nr`` in struct syscall_metadata (BTF, else 0 and 8)."""
    try:
        from . import btf  # noqa: PLC0415

        layout = btf.load().struct_layout("syscall_metadata")
        offs = dict(zip(layout["member"], layout["offset"]))
        return int(offs["name"]), int(offs["syscall_nr"])
    except Exception:  # noqa: BLE001 - the layout has been the same since 2009
        return 0, 8


def rip_relative_loads(code: bytes, address: int) -> list[int]:
    """Targets of the 64-bit ``mov REG, [rip + disp32]`` loads in x86-64 machine code.

    ``address`` is where ``code`` starts. Used to find the kernel variable a
    small function reads (``get_syscall_name`` reads ``syscalls_metadata``);
    the caller checks each candidate, so a false match in the byte scan is harmless.
    """
    targets = []
    for i in range(len(code) - 6):
        rex, op, modrm = code[i], code[i + 1], code[i + 2]
        if rex in (0x48, 0x4C) and op == 0x8B and modrm & 0xC7 == 0x05:
            disp = int.from_bytes(code[i + 3:i + 7], "little", signed=True)
            target = (address + i + 7 + disp) & 0xFFFFFFFFFFFFFFFF
            if target not in targets:
                targets.append(target)
    return targets


def cmp_immediates(code: bytes) -> list[int]:
    """Immediates of ``cmp r32, imm`` in x86-64 code: candidates for NR_syscalls."""
    found = []
    for i in range(len(code) - 2):
        if code[i] == 0x81 and code[i + 1] & 0xF8 == 0xF8 and i + 6 <= len(code):
            found.append(int.from_bytes(code[i + 2:i + 6], "little", signed=True))
        elif code[i] == 0x83 and code[i + 1] & 0xF8 == 0xF8:
            found.append(code[i + 2])
    return [v for v in found if 0 < v <= MAX_ENTRIES]


def consistent_entries(entries: list[tuple[int, int, str]]) -> dict[int, str]:
    """Keep the ``(index, nr, name)`` entries whose metadata agrees with its slot.

    ``syscalls_metadata[nr]`` points at the metadata of syscall ``nr``, whose
    own ``syscall_nr`` field says ``nr`` again; names look like ``sys_openat``.
    """
    table = {}
    for index, nr, name in entries:
        if nr == index and name.startswith("sys_") and name[4:].replace("_", "a").isalnum():
            table[nr] = name[4:]
    return table


def read_kernel_syscalls() -> list[tuple[int, str]]:
    """Read ``(nr, name)`` of every syscall from the running kernel with a BPF program.

    The kernel keeps ``syscalls_metadata``, an array indexed by syscall number
    of pointers to ``struct syscall_metadata {const char *name; int syscall_nr; ...}``
    (filled by ftrace at boot). The variable is not in ``/proc/kallsyms``, but
    the exported function ``get_syscall_name`` (which is) loads it: a small bcc
    program reads that function's first bytes, Python finds the variable's
    address in its ``mov REG, [rip+disp]``, and the program then reads the
    array. Entries are kept only when the struct's own ``syscall_nr`` matches
    its slot. Needs root and bcc; most callers want :func:`syscall_table`.

    Raises SetupError (or a subclass) when the kernel cannot be read.
    """
    from ._bcc import load_bcc, require_root  # noqa: PLC0415
    from .session import ProbeRun  # noqa: PLC0415

    require_root("reading the syscall table from the kernel")
    func = _kallsyms("get_syscall_name").get("get_syscall_name", 0)
    if not func:
        raise SetupError(
            "get_syscall_name is not in /proc/kallsyms (or its address is hidden)",
            cause="a kernel without CONFIG_FTRACE_SYSCALLS, or kptr_restrict hides addresses",
            next_step="run as root; syscall_table() falls back to the installed UAPI headers",
        )
    name_off, nr_off = _metadata_offsets()
    bcc = load_bcc()
    cflags = [
        f"-DMAXN={MAX_ENTRIES}", f"-DCODE_BYTES={_CODE_BYTES}",
        f"-DNAME_OFF={name_off}", f"-DNR_OFF={nr_off}", f"-DTARGET_TGID={os.getpid()}",
    ]
    with ProbeRun() as run:
        b = bcc.BPF(text=_BPF_TEXT, cflags=cflags)
        run.on_close(b.cleanup)
        config, out = b["config"], b["out"]

        def run_once(mode: int, addr: int, count: int = 0) -> None:
            cfg = config.Leaf(mode, addr, count)
            config[config.Key(0)] = cfg
            os.getppid()  # fires the tracepoint in this very process
            if config[config.Key(0)].mode != 0:
                raise SetupError(
                    "the BPF program that reads the syscall table did not run",
                    cause="the tracepoint syscalls:sys_enter_getppid did not fire for this process",
                    next_step="check `ebpf-lab doctor`; syscall_table() falls back to the headers",
                )

        run_once(1, func)
        code = bytes(b["code"][b["code"].Key(0)].bytes)
        code = code.split(b"\xcc\xcc", 1)[0]  # int3 padding: the function ends there
        limits = cmp_immediates(code)
        count = max(limits) + 1 if limits else MAX_ENTRIES
        count = min(count, MAX_ENTRIES)
        best: dict[int, str] = {}
        for var in rip_relative_loads(code, func):
            for i in range(count):
                out[out.Key(i)] = out.Leaf()
            run_once(2, var, count)
            entries = []
            for i in range(count):
                e = out[out.Key(i)]
                if e.ok:
                    entries.append((i, int(e.nr), e.name.decode("ascii", "replace")))
            table = consistent_entries(entries)
            if len(table) > len(best):
                best = table
    if len(best) < 10:
        raise SetupError(
            "could not find the kernel's syscall metadata from get_syscall_name",
            cause="this kernel compiles get_syscall_name differently than expected",
            next_step="syscall_table() falls back to the installed UAPI headers; report the kernel version",
        )
    return sorted(best.items())


def _read_headers() -> tuple[list[tuple[int, str]], str]:
    for path in UNISTD_HEADERS:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        pairs = sorted({(int(nr), name) for name, nr in _DEFINE_RE.findall(text)})
        if pairs:
            return pairs, path
    raise SetupError(
        "no syscall table: the kernel could not be read and no unistd_64.h header is installed",
        cause="not root (or bcc missing), and the linux-libc-dev package is absent",
        next_step="run as root, or `apt-get install linux-libc-dev`, or run make setup",
    )


@lru_cache(maxsize=4)
def _table(source: str, refresh_token: int) -> tuple[tuple[tuple[int, str], ...], str, str]:
    """(pairs, source description, warning) -- cached per process."""
    warning = ""
    if source in ("auto", "kernel"):
        path = cache_path()
        if refresh_token == 0:
            try:
                data = json.loads(path.read_text())
                pairs = tuple((int(nr), str(name)) for nr, name in data["table"])
                if pairs:
                    return pairs, data["source"], ""
            except (OSError, ValueError, KeyError, TypeError):
                pass
        try:
            pairs = tuple(read_kernel_syscalls())
            if not pairs:
                raise SetupError("the kernel's syscall metadata was empty")
            desc = f"running kernel {os.uname().release} (syscall metadata read with BPF)"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}")
                tmp.write_text(json.dumps({"source": desc, "table": pairs}))
                os.replace(tmp, path)
            except OSError:
                pass
            return pairs, desc, ""
        except EbpfLabError as exc:
            if source == "kernel":
                raise
            warning = f"could not read the running kernel: {exc.what}"
        except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception on load failures
            if source == "kernel":
                raise SetupError(f"reading the syscall table with BPF failed: {exc}",
                                 next_step="run `ebpf-lab doctor`") from exc
            warning = f"could not read the running kernel: {exc}"
    pairs, path = _read_headers()
    return tuple(pairs), f"header {path} (installed UAPI headers, not the running kernel)", warning


_REFRESH = [0]


def syscall_table(*, source: str = "auto", refresh: bool = False):
    """Syscall number -> name for the running kernel, as a DataFrame ``[nr, name]``.

    ``source="auto"`` reads the running kernel (cached per kernel and boot),
    falling back to the installed headers; ``"kernel"`` raises instead of
    falling back; ``"headers"`` reads only the header. ``refresh=True``
    ignores the cache. ``df.attrs["source"]`` says where the table came from
    and ``df.attrs["warning"]`` why it fell back, if it did.

    >>> t = syscall_table()                                 # doctest: +SKIP
    >>> t[t.name == "openat"]                               # doctest: +SKIP
          nr    name
    257  257  openat
    """
    import pandas as pd  # noqa: PLC0415

    if source not in ("auto", "kernel", "headers"):
        raise UsageError(f"source must be 'auto', 'kernel' or 'headers', not {source!r}")
    if refresh:
        _REFRESH[0] += 1
        _maps.cache_clear()
    pairs, desc, warning = _table(source, _REFRESH[0])
    df = pd.DataFrame(list(pairs), columns=["nr", "name"])
    df.attrs.update(source=desc, warning=warning, kernel=os.uname().release)
    return df


@lru_cache(maxsize=1)
def _maps() -> tuple[dict[int, str], dict[str, int]]:
    pairs, _desc, _warn = _table("auto", _REFRESH[0])
    by_nr = dict(pairs)
    by_name: dict[str, int] = {}
    for nr, name in pairs:
        by_name.setdefault(name, nr)
    # the kernel's own names differ from the ABI's for a few (newstat is stat, umount is
    # umount2): accept the header's names too, for numbers this kernel has
    try:
        for nr, name in _read_headers()[0]:
            if nr in by_nr:
                by_name.setdefault(name, nr)
    except SetupError:
        pass
    return by_nr, by_name


def syscall_name(nr: int) -> str:
    """The name of syscall number ``nr`` on this kernel (``257 -> 'openat'``).

    Unknown numbers give ``f"syscall_{nr}"``, so a table of counts never breaks.
    """
    return _maps()[0].get(int(nr), f"syscall_{int(nr)}")


def syscall_nr(name: str) -> int:
    """The number of the syscall called ``name`` (``'openat' -> 257``).

    ``sys_openat`` and ``__x64_sys_openat`` are accepted too. Raises
    UnknownProbeError with "did you mean" suggestions for a typo.
    """
    key = name.strip()
    for prefix in ("__x64_sys_", "__se_sys_", "sys_"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    by_name = _maps()[1]
    if key in by_name:
        return by_name[key]
    close = difflib.get_close_matches(key, list(by_name), n=3, cutoff=0.6)
    raise UnknownProbeError(
        f"this kernel has no syscall called {name!r}",
        probe=f"tracepoint:syscalls:sys_enter_{key}",
        suggestions=tuple(close),
        cause="a typo, or a syscall this kernel or architecture does not have",
        next_step=(f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                   else "see them all with ebpf_lab.syscall_table()"),
    )
