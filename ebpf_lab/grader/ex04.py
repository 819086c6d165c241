"""Checks for chapter 04, BTF (exercises/04_btf/).

The learner answers questions about the RUNNING kernel's types (a field's
offset, a struct's size, a function's arguments, an enumerator's value, what a
typedef names). The question is drawn at random at grading time from every
type the kernel has, and the answer is checked against ``bpftool btf dump file
/sys/kernel/btf/vmlinux format raw`` (and ``format c`` for typedefs): bpftool,
not the lab's own BTF reader, is the referee. Answers cannot be hard-coded.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

from .framework import Check, ExerciseSpec, RunFailure, Scenario, Trial, Unsupported
from .model import fail, ok

__all__ = ["SPECS", "bpftool_types", "bpftool_typedefs"]

CHAPTER = "04_btf"
VMLINUX = "/sys/kernel/btf/vmlinux"
NEEDS = ("BTF",)

_HEAD = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'(.*)$")
_ITEM = re.compile(r"^\t'([^']*)' (?:type_id=(\d+)(?: bits_offset=(\d+))?(?: bitfield_size=(\d+))?|val=(-?\d+))")


def _bpftool(fmt: str) -> str:
    exe = shutil.which("bpftool")
    if exe is None:
        raise Unsupported("bpftool", "bpftool is not installed, so the grader has no referee for BTF answers")
    if not os.path.exists(VMLINUX):
        raise Unsupported("BTF", f"{VMLINUX} does not exist: this kernel has no BTF")
    proc = subprocess.run([exe, "btf", "dump", "file", VMLINUX, "format", fmt], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RunFailure(f"the grader's bpftool failed: {proc.stderr.strip()[:300]}")
    return proc.stdout


@functools.lru_cache(maxsize=1)
def bpftool_types() -> dict[int, dict]:
    """Every type of the running kernel as bpftool prints it: id -> kind, name, head, items."""
    types: dict[int, dict] = {}
    cur = None
    for line in _bpftool("raw").splitlines():
        m = _HEAD.match(line)
        if m:
            cur = {"kind": m.group(2), "name": m.group(3), "head": m.group(4), "items": []}
            types[int(m.group(1))] = cur
            continue
        if cur is not None and line.startswith("\t"):
            im = _ITEM.match(line)
            if im:
                cur["items"].append(im.groups())
    return types


@functools.lru_cache(maxsize=1)
def bpftool_typedefs() -> dict[str, str]:
    """Simple one-line typedefs of ``format c``: name -> the type it names (``u32`` -> ``__u32``)."""
    out = {}
    for m in re.finditer(r"^typedef ([^(){}\[\];]+?)\s*\b(\w+);$", _bpftool("c"), re.M):
        out[m.group(2)] = re.sub(r"\s+", " ", m.group(1)).strip()
    return out


def _head_value(head: str, key: str) -> int:
    return int(re.search(rf"\b{key}=(\d+)", head).group(1))


def _unique_names(kind: str) -> dict[str, int]:
    seen: dict[str, list[int]] = {}
    for tid, t in bpftool_types().items():
        if t["kind"] == kind and t["name"]:
            seen.setdefault(t["name"], []).append(tid)
    return {n: ids[0] for n, ids in seen.items() if len(ids) == 1}


def _int_answer(out, fn: str):
    if out.get("type") != "value":
        raise RunFailure(f"{fn} should return an int, but it returned a {out.get('type')}")
    v = out["value"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise RunFailure(f"{fn} should return an int, but it returned {v!r}")
    return int(v)


def _exact(fn: str):
    def check(out, truth):
        got = _int_answer(out, fn)
        if got != truth["answer"]:
            return fail(f"{fn}({', '.join(map(repr, truth['args']))}) returned {got}, but on this kernel "
                        f"bpftool says {truth['answer']} ({truth['why']})")
        return ok()
    return check

# ---------------------------------------------------------------- 04.1 field offset


def _offset_setup(rng, tmp):
    types = bpftool_types()
    names = sorted(_unique_names("STRUCT"))
    while True:
        name = rng.choice(names)
        t = types[_unique_names("STRUCT")[name]]
        members = [it for it in t["items"] if it[0] and it[0] != "(anon)" and it[2] is not None and not it[3]]
        members = [it for it in members if sum(1 for o in t["items"] if o[0] == it[0]) == 1]
        if len(members) >= 3:
            break
    field, _, bits, _, _ = rng.choice(members[1:])
    return Scenario(job={"call_args": [name, field]},
                    truth={"answer": int(bits) // 8, "args": (name, field),
                           "why": f"'{field}' starts at bit {bits} of struct {name}"})


SPEC_04_1 = ExerciseSpec(
    id="04.1", title="The offset of a struct field, from BTF", chapter=CHAPTER, filename="04.1_field_offset.py",
    function="field_offset",
    trials=[Trial(_offset_setup, [Check("field_offset is right for a random struct and field", 3,
                                        _exact("field_offset"))], needs=NEEDS),
            Trial(_offset_setup, [Check("and for another one", 1, _exact("field_offset"), hidden=True)],
                  needs=NEEDS)],
)

# ---------------------------------------------------------------- 04.2 struct size


def _size_setup(rng, tmp):
    types = bpftool_types()
    uniq = _unique_names("STRUCT")
    name = rng.choice(sorted(n for n, tid in uniq.items() if _head_value(types[tid]["head"], "size") > 8))
    size = _head_value(types[uniq[name]]["head"], "size")
    return Scenario(job={"call_args": [name]},
                    truth={"answer": size, "args": (name,), "why": f"struct {name} has size={size}"})


SPEC_04_2 = ExerciseSpec(
    id="04.2", title="The size of a struct, from BTF", chapter=CHAPTER, filename="04.2_struct_size.py",
    function="struct_size",
    trials=[Trial(_size_setup, [Check("struct_size is right for a random struct", 2, _exact("struct_size"))],
                  needs=NEEDS),
            Trial(_size_setup, [Check("and for another one", 1, _exact("struct_size"), hidden=True)],
                  needs=NEEDS)],
)

# ---------------------------------------------------------------- 04.3 function arguments


def _args_setup(rng, tmp):
    types = bpftool_types()
    uniq = _unique_names("FUNC")
    names = sorted(uniq)
    while True:
        name = rng.choice(names)
        proto = types[_head_value(types[uniq[name]]["head"], "type_id")]
        params = [it[0] for it in proto["items"]]
        if len(params) >= 2 and all(p and p != "(anon)" for p in params):
            break
    return Scenario(job={"call_args": [name]}, truth={"answer": params, "args": (name,)})


def _args_check(out, truth):
    if out.get("type") != "value" or not isinstance(out.get("value"), list):
        raise RunFailure(f"arg_names should return a list of str, but it returned {out.get('value')!r}")
    got = out["value"]
    if got != truth["answer"]:
        return fail(f"arg_names({truth['args'][0]!r}) returned {got}, but on this kernel bpftool says the "
                    f"arguments are {truth['answer']} (in order)")
    return ok()


SPEC_04_3 = ExerciseSpec(
    id="04.3", title="A kernel function's argument names (what kfunc/fentry sees)", chapter=CHAPTER,
    filename="04.3_arg_names.py", function="arg_names",
    trials=[Trial(_args_setup, [Check("arg_names is right for a random function", 3, _args_check)], needs=NEEDS),
            Trial(_args_setup, [Check("and for another one", 1, _args_check, hidden=True)], needs=NEEDS)],
)

# ---------------------------------------------------------------- 04.4 enumerator value


def _enum_setup(rng, tmp):
    values: dict[str, set] = {}
    for t in bpftool_types().values():
        if t["kind"] in ("ENUM", "ENUM64"):
            for it in t["items"]:
                if it[4] is not None:
                    values.setdefault(it[0], set()).add(int(it[4]))
    name = rng.choice(sorted(n for n, v in values.items() if len(v) == 1 and n))
    value = next(iter(values[name]))
    return Scenario(job={"call_args": [name]},
                    truth={"answer": value, "args": (name,), "why": f"'{name}' val={value}"})


SPEC_04_4 = ExerciseSpec(
    id="04.4", title="The value of an enumerator, from BTF", chapter=CHAPTER, filename="04.4_enum_value.py",
    function="enum_value",
    trials=[Trial(_enum_setup, [Check("enum_value is right for a random enumerator", 2, _exact("enum_value"))],
                  needs=NEEDS),
            Trial(_enum_setup, [Check("and for another one", 1, _exact("enum_value"), hidden=True)],
                  needs=NEEDS)],
)

# ---------------------------------------------------------------- 04.5 typedef


def _typedef_setup(rng, tmp):
    table = bpftool_typedefs()
    name = rng.choice(sorted(table))
    return Scenario(job={"call_args": [name]}, truth={"answer": table[name], "args": (name,)})


def _norm(s: str) -> str:
    return re.sub(r"\s*\*\s*", " *", re.sub(r"\s+", " ", s.strip())).strip()


def _typedef_check(out, truth):
    if out.get("type") != "value" or not isinstance(out.get("value"), str):
        raise RunFailure(f"typedef_target should return a str, but it returned {out.get('value')!r}")
    if _norm(out["value"]) != _norm(truth["answer"]):
        return fail(f"typedef_target({truth['args'][0]!r}) returned {out['value']!r}, but bpftool's C dump "
                    f"says `typedef {truth['answer']} {truth['args'][0]};` (one step only)")
    return ok()


SPEC_04_5 = ExerciseSpec(
    id="04.5", title="What a typedef names, one step", chapter=CHAPTER, filename="04.5_typedef_target.py",
    function="typedef_target",
    trials=[Trial(_typedef_setup, [Check("typedef_target is right for a random typedef", 2, _typedef_check)],
                  needs=NEEDS),
            Trial(_typedef_setup, [Check("and for another one", 1, _typedef_check, hidden=True)], needs=NEEDS)],
)

SPECS = [SPEC_04_1, SPEC_04_2, SPEC_04_3, SPEC_04_4, SPEC_04_5]
