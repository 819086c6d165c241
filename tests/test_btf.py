"""The pure-Python BTF reader agrees with bpftool, type for type."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess

import pytest

from ebpf_lab import btf
from ebpf_lab.errors import UnknownProbeError

from conftest import IN_CI

pytestmark = pytest.mark.unit


def _kernel_btf() -> btf.Btf:
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("this kernel does not support BTF (no /sys/kernel/btf/vmlinux): "
                    "lesson 04 then shows tracepoint formats instead")
    return btf.load()


def _bpftool_blocks() -> dict[int, str]:
    if shutil.which("bpftool") is None:
        if IN_CI:
            pytest.fail("bpftool must be installed in CI (make setup installs it)")
        pytest.skip("bpftool is not installed: run `make setup`")
    out = subprocess.run(["bpftool", "btf", "dump", "file", btf.VMLINUX], capture_output=True,
                         text=True, check=True).stdout
    blocks: dict[int, list[str]] = {}
    cur = None
    for line in out.splitlines():
        if line.startswith("["):
            cur = int(line[1:line.index("]")])
            blocks[cur] = [line]
        else:
            blocks[cur].append(line)
    return {k: "\n".join(v) for k, v in blocks.items()}


def test_random_sample_matches_bpftool_exactly():
    b = _kernel_btf()
    blocks = _bpftool_blocks()
    assert len(blocks) == len(b)
    seed = random.randrange(1 << 30)
    sample = random.Random(seed).sample(sorted(blocks), 1000)
    mismatched = [tid for tid in sample if b.dump_raw(tid) != blocks[tid]]
    assert not mismatched, f"seed {seed}: first mismatch {mismatched[0]}:\n{b.dump_raw(mismatched[0])}\n" \
                           f"bpftool:\n{blocks[mismatched[0]]}"


def test_every_kind_present_matches_bpftool():
    """At least one type of every kind this kernel uses, compared in full."""
    b = _kernel_btf()
    blocks = _bpftool_blocks()
    first_of_kind: dict[str, int] = {}
    for t in b.types[1:]:
        first_of_kind.setdefault(t.kind, t.id)
    assert {"INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FUNC", "FUNC_PROTO", "TYPEDEF"} <= set(first_of_kind)
    for kind, tid in first_of_kind.items():
        assert b.dump_raw(tid) == blocks[tid], kind


def test_struct_path_agrees_with_bpftrace():
    b = _kernel_btf()
    layout = b.struct_layout("path")
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed: run `make setup`")
    out = subprocess.run(["bpftrace", "-lv", "struct path"], capture_output=True, text=True).stdout
    members = [ln.strip().rstrip(";") for ln in out.splitlines() if ln.startswith("\t")]
    ours = [f"{row.type}{row.member}" if row.type.endswith("*") else f"{row.type} {row.member}"
            for row in layout.itertuples()]
    assert ours == members
    assert list(layout["offset"]) == [0, 8]
    assert layout.attrs["size"] == 16


def test_func_args_of_vfs_open_and_enumerators():
    b = _kernel_btf()
    args = b.func_args("vfs_open")
    assert list(args["name"]) == ["path", "file", "retval"]
    assert list(args["type"]) == ["const struct path *", "struct file *", "int"]
    assert b.typedef_chain("u32") == ["u32", "__u32", "unsigned int"]
    assert b.enumerator("BPF_MAP_TYPE_RINGBUF") == 27  # uapi value, stable by ABI
    with pytest.raises(UnknownProbeError) as err:
        b.func_args("vfs_opne")
    assert "vfs_open" in str(err.value)


def _tiny_blob() -> bytes:
    """A hand-made BTF blob: int, a struct with a bitfield, a signed enum, a function."""
    strings = b"\0int\0s\0a\0b\0e\0NEG\0f\0x\0"
    off = {name: strings.index(name.encode() + b"\0") for name in ("int", "s", "a", "b", "e", "NEG", "f", "x")}
    types = b""
    types += struct.pack("<III", off["int"], 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)  # [1] int
    types += struct.pack("<III", off["s"], (4 << 24) | (1 << 31) | 2, 8)  # [2] struct s, kind_flag
    types += struct.pack("<III", off["a"], 1, 0) + struct.pack("<III", off["b"], 1, (3 << 24) | 32)
    types += struct.pack("<III", off["e"], (6 << 24) | (1 << 31) | 1, 4) + struct.pack("<Ii", off["NEG"], -5)  # [3]
    types += struct.pack("<III", 0, (13 << 24) | 1, 1) + struct.pack("<II", off["x"], 2)  # [4] proto int(struct s)
    types += struct.pack("<III", off["f"], (12 << 24) | 1, 4)  # [5] func f, global
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_hand_made_blob():
    b = btf.Btf(_tiny_blob())
    assert len(b) == 5
    assert b.dump_raw(2) == "[2] STRUCT 's' size=8 vlen=2\n\t'a' type_id=1 bits_offset=0\n" \
                            "\t'b' type_id=1 bits_offset=32 bitfield_size=3"
    assert b.dump_raw(3) == "[3] ENUM 'e' encoding=SIGNED size=4 vlen=1\n\t'NEG' val=-5"
    assert list(b.func_args("f").itertuples(index=False, name=None)) == [("x", "struct s"), ("retval", "int")]
    assert b.enumerator("NEG") == -5
    layout = b.struct_layout("s")
    assert list(layout["bitfield_size"]) == [0, 3]
    assert list(layout["offset"]) == [0, 4]
