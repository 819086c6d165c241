"""Unit tests of the bpftrace 0.17 output parsers, against real captured output.

The fixtures in tests/fixtures/bpftrace/ were captured on the lab machine with
capture.sh (bpftrace 0.17.0); the programs that produced them are in that script.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from ebpf_lab import bpftrace_json as bj
from ebpf_lab.bpftrace import diagnose
from ebpf_lab.errors import (
    AttachError,
    NotSupportedError,
    ProbeError,
    ProgramSyntaxError,
    UnknownProbeError,
    UsageError,
    VerifierError,
)

from conftest import FIXTURES

pytestmark = pytest.mark.unit
FX = FIXTURES / "bpftrace"
CAPTURE = (FX / "capture.sh").read_text()


def program_of(name: str) -> str:
    """The program capture.sh ran to produce fixture ``name``."""
    m = re.search(r"bt %s\.jsonl [^\n]*?-e '(.*?)'" % re.escape(name), CAPTURE, re.S)
    if m:
        return m.group(1)
    var = re.search(r"bt %s\.jsonl [^\n]*-e \"\$(\w)\"" % re.escape(name), CAPTURE).group(1)
    return re.search(r"^%s='(.*?)'" % var, CAPTURE, re.S | re.M).group(1)


def collect(name: str, program: str | None = None) -> bj.OutputCollector:
    prog = program_of(name) if program is None else program
    return bj.OutputCollector(prog).feed_all((FX / f"{name}.jsonl").read_text().splitlines(keepends=True))


def stderr_of(name: str) -> str:
    return (FX / f"{name}.stderr").read_text()


# --------------------------------------------------------------------------- lines

def test_parse_line_reads_bpftrace_json_and_rejects_the_rest():
    assert bj.parse_line('{"type": "map", "data": {"@": 23}}\n') == {"type": "map", "data": {"@": 23}}
    assert bj.parse_line("") is None
    assert bj.parse_line("opened=23 failed=0") is None
    assert bj.parse_line("{not json") is None
    assert bj.parse_line('{"no_type": 1}') is None


def test_non_ascii_bytes_escaped_by_bpftrace_are_decoded_as_utf8():
    line = next(ln for ln in (FX / "special.jsonl").read_text().splitlines() if "quoted" in ln)
    assert "\\uffffffc3" in line                       # the raw bug really is in the fixture
    assert bj.parse_line(line)["data"] == 'comma, "quoted" é\n'


# --------------------------------------------------------------------------- events

def test_printf_lines_become_rows_and_a_printf_without_newline_joins_the_next():
    c = collect("aggregations")
    assert c.attached_probes == 1
    assert list(c.events()["text"]) == ["hello\t42", "partial"]


def test_time_value_and_join_records_are_rows_too():
    c = collect("special")
    assert list(c.events()["text"]) == ["20:13:21", 'comma, "quoted" é', '[1, "x"]', "5", "str"]
    j = collect("join")
    assert list(j.events()["text"]) == ["/bin/echo a b,c", "/bin/echo,a,b,c"]
    assert j.output == ["a b,c"]                        # the -c command's own stdout


def test_columns_split_tabs_into_typed_columns():
    df = bj.events_frame(["cat\t12\t/etc/hosts", "ls\t7\t/a\tb", "sh\t3"], ["comm", ("pid", int), "file"])
    assert list(df.columns) == ["comm", "pid", "file"]
    assert df["pid"].dtype == "int64" and list(df["pid"]) == [12, 7, 3]
    assert df["file"].iloc[1] == "/a\tb"               # the last field keeps extra tabs
    assert df["file"].isna().iloc[2]


def test_column_specs_in_three_spellings_agree():
    want = [("comm", None), ("pid", "int64"), ("lat", "float64")]
    assert bj.parse_columns_spec("comm, pid:int, lat:float") == want
    assert bj.parse_columns_spec(["comm", ("pid", int), ("lat", float)]) == want
    assert bj.parse_columns_spec({"comm": None, "pid": "int", "lat": float}) == want
    with pytest.raises(UsageError):
        bj.parse_columns_spec("")


def test_a_field_that_is_not_a_number_says_what_to_fix():
    with pytest.raises(UsageError, match="column 'pid' cannot be converted"):
        bj.events_frame(["cat\tnot-a-pid"], "comm,pid:int")


def test_no_events_gives_an_empty_frame_with_the_columns():
    assert list(bj.events_frame([], "comm,pid:int").columns) == ["comm", "pid"]
    assert list(bj.events_frame([]).columns) == ["text"]


def test_command_output_glued_before_a_json_line_is_separated():
    c = bj.OutputCollector().feed_all(['no newline{"type": "printf", "data": "x\\n"}\n'])
    assert c.output == ["no newline"] and c.event_lines() == ["x"]


# --------------------------------------------------------------------------- maps

def test_maps_of_every_aggregation_get_named_typed_columns():
    maps = collect("aggregations").maps()
    assert maps["@"].to_dict("list") == {"count": [1]}
    assert maps["@sm"].to_dict("list") == {"sum": [7]}
    assert maps["@neg"].to_dict("list") == {"sum": [-5]}
    assert maps["@mn"].to_dict("list") == {"min": [3]}
    assert maps["@mx"].to_dict("list") == {"max": [9]}
    assert maps["@av"].to_dict("list") == {"avg": [10]}           # avg(10), avg(11): bpftrace rounds down
    assert maps["@st"].to_dict("list") == {"count": [2], "average": [15], "total": [30]}
    assert maps["@kst"].to_dict("list") == {"key": ["a"], "count": [1], "average": [3], "total": [3]}
    assert maps["@str"].to_dict("list") == {"value": ["abc"]}
    assert maps["@tup"].to_dict("list") == {"value0": [1], "value1": ["two"]}
    assert maps["@t"]["key"].dtype == "int64" and maps["@t"].to_dict("list") == {"key": [1], "value": [1]}
    assert sorted(maps["@counts"]["key"]) == ["a", "b"]
    assert all(df["count"].dtype == "int64" for n, df in maps.items() if "count" in df)


def test_multi_part_keys_split_into_typed_key_columns():
    m = collect("aggregations").maps()["@multi"].sort_values("key0")
    assert m.to_dict("list") == {"key0": [1, 2], "key1": ["x", "y"], "count": [1, 1]}
    assert m["key0"].dtype == "int64"
    mk = collect("special").maps()["@mk"]
    assert mk.to_dict("list") == {"key0": [1], "key1": [2], "key2": ["c"], "sum": [4]}


def test_a_string_key_holding_a_comma_is_kept_whole():
    s = collect("special").maps()["@s"]                            # @s["a,b", 3]: bpftrace prints "a,b,3"
    assert s.to_dict("list") == {"key0": ["a,b"], "key1": [3], "count": [1]}
    assert bj.split_key("/tmp/a,b.txt", 1) == ["/tmp/a,b.txt"]
    assert bj.split_key("7,x,y", 2) == ["7", "x,y"]


def test_stack_and_address_keys_and_cleared_maps():
    maps = collect("special").maps()
    assert maps["@ip"].to_dict("list") == {"key": ["127.0.0.1"], "count": [1]}
    assert "__x64_sys_bpf" in maps["@k"]["key"].iloc[0]
    assert maps["@c"].to_dict("list") == {"count": [0]}            # clear() of a count leaves 0
    assert "@z" not in maps                                         # a cleared keyed map is not printed
    assert maps["@avg2"].to_dict("list") == {"key": [1], "avg": [9]}


def test_keyed_maps_without_the_program_are_split_only_when_every_key_agrees():
    c = bj.OutputCollector("").feed_all((FX / "aggregations.jsonl").read_text().splitlines())
    maps = c.maps()
    assert list(maps["@multi"].columns) == ["key0", "key1", "value"]
    assert list(maps["@counts"].columns) == ["key", "value"]


def test_program_maps_reads_arity_and_aggregation():
    info = bj.program_maps('t:a:b { @[pid, comm] = count(); @h[str($1, 5)] = hist(arg0); @x = 1; print(@x); '
                           '@l = lhist(arg1, 0, 10, 1); }')
    assert info == {"@": {"arity": 2, "func": "count"}, "@h": {"arity": 1, "func": "hist"},
                    "@x": {"arity": 0, "func": None}, "@l": {"arity": 0, "func": "lhist"}}


def test_stats_and_hist_zeroed():
    c = collect("empty")
    assert c.maps()["@sz"].to_dict("list") == {"count": [0], "average": [0], "total": [0]}
    hists = c.hists()
    assert hists["@lz"].empty and list(hists["@lz"].columns) == ["min", "max", "count"]
    assert hists["@ek"].empty and list(hists["@ek"].columns) == ["key", "min", "max", "count"]
    assert bj.hist_text(hists["@lz"]) == ""


def test_lost_events_are_summed():
    c = collect("lost_events", program="")
    assert c.lost == 6 and c.attached_probes == 2


# --------------------------------------------------------------------------- hists

def test_hist_buckets_are_inclusive_with_open_ends():
    hists = collect("hists").hists()
    h = hists["@h"]
    assert h.attrs["kind"] == "hist"
    assert pd.isna(h["min"].iloc[0]) and h["max"].iloc[0] == -1           # the negative bucket
    row = h[h["min"] == 4].iloc[0]
    assert (row["max"], row["count"]) == (7, 1)
    assert int(h["count"].sum()) == 7
    lh = hists["@lh"]
    assert lh.attrs["kind"] == "lhist"
    assert pd.isna(lh["max"].iloc[-1]) and lh["min"].iloc[-1] == 100 and lh["count"].iloc[-1] == 1
    assert lh[lh["min"] == 70]["count"].item() == 2
    k = hists["@k"]
    assert k.to_dict("list") == {"key": ["a"], "min": [2], "max": [3], "count": [1]}


def _text_sections(text: str) -> dict[str, str]:
    """bpftrace's text output split into {header: body}."""
    out, name = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("@"):
            name = line.rstrip()
            out[name] = line
        elif name and line.strip():
            out[name] += line
    return out


def test_hist_text_draws_exactly_what_bpftrace_prints():
    hists = collect("hists").hists()
    golden = _text_sections((FX / "hists.txt").read_text())
    assert golden["@h:"] == "@h: \n" + bj.hist_text(hists["@h"])
    assert golden["@lh:"] == "@lh: \n" + bj.hist_text(hists["@lh"])
    assert golden["@k[a]:"] == bj.hist_text(hists["@k"])


def test_lhist_with_a_key_draws_open_ended_buckets():
    text = bj.hist_text(collect("special").hists()["@lhk"])
    assert text.startswith("@lhk[x]: \n(..., 0)")
    assert "\n[100, ...)             1 |@@@@" in text


# --------------------------------------------------------------------------- errors

def test_harmless_memlock_warning_alone_is_no_error():
    assert diagnose(stderr_of("aggregations"), exit_code=0) is None


@pytest.mark.parametrize("name, line, column", [("syntax", 1, 20), ("syntax_multiline", 3, 6)])
def test_syntax_errors_point_at_line_and_column(name, line, column):
    err = diagnose(stderr_of(name), exit_code=1, program=program_of(name))
    assert isinstance(err, ProgramSyntaxError)
    assert (err.line, err.column) == (line, column)
    assert "~" in str(err) and "Next step" in str(err)
    assert err.stderr == stderr_of(name)


@pytest.mark.parametrize("name, needle", [("semantic", "Type mismatch"), ("unknown_function", "Unknown function: cnt")])
def test_semantic_errors_keep_bpftraces_message(name, needle):
    err = diagnose(stderr_of(name), exit_code=1)
    assert isinstance(err, ProgramSyntaxError) and needle in str(err) and err.line == 1


def test_kfunc_arguments_unreadable_here_is_not_supported_not_a_syntax_error():
    err = diagnose(stderr_of("kfunc_args"), exit_code=1, program=program_of("kfunc_args"))
    assert isinstance(err, NotSupportedError) and err.feature == "fentry/fexit (kfunc)"
    assert "ebpf_lab.btf" in str(err)


def test_unknown_tracepoint_offers_suggestions():
    err = diagnose(stderr_of("unknown_tracepoint"), exit_code=1,
                   suggest=lambda p: ["tracepoint:syscalls:sys_enter_openat"] if "opnat" in p else [])
    assert isinstance(err, UnknownProbeError)
    assert err.probe == "tracepoint:syscalls:sys_enter_opnat"
    assert err.suggestions == ("tracepoint:syscalls:sys_enter_openat",)
    assert "did you mean 'tracepoint:syscalls:sys_enter_openat'" in str(err)


def test_unknown_field_names_its_tracepoint():
    err = diagnose(stderr_of("unknown_field"), exit_code=1)
    assert isinstance(err, UnknownProbeError) and err.probe == "tracepoint:syscalls:sys_enter_openat"
    assert "'nosuch'" in str(err)


@pytest.mark.parametrize("name", ["kprobe", "kretprobe"])
def test_kprobes_are_not_supported_here(name):
    err = diagnose(stderr_of(name), exit_code=255)
    assert isinstance(err, NotSupportedError) and err.feature == "kprobes"
    assert err.alternative == "tracepoints (tracepoint:syscalls:*) or uprobes"


def test_kfunc_is_not_supported_here():
    err = diagnose(stderr_of("kfunc"), exit_code=1)
    assert isinstance(err, NotSupportedError) and err.feature == "fentry/fexit (kfunc)"


def test_attach_failure_is_an_attach_error():
    err = diagnose(stderr_of("attach_hardware"), exit_code=255)
    assert isinstance(err, AttachError) and "perf_event_open failed" in str(err)


def test_no_probes_to_attach_on_stdout_is_an_unknown_probe():
    out = [ln for ln in (FX / "uprobe_nosym.jsonl").read_text().splitlines() if bj.parse_line(ln) is None]
    err = diagnose(stderr_of("uprobe_nosym"), stdout=out, exit_code=1)
    assert isinstance(err, UnknownProbeError)


def test_uprobe_on_a_missing_file():
    err = diagnose(stderr_of("uprobe_nofile"), exit_code=1)
    assert isinstance(err, UnknownProbeError) and "/nonexistent" in str(err)


def test_missing_pid_and_strlen_are_usage_errors():
    assert isinstance(diagnose(stderr_of("pid_missing"), exit_code=1, pid=999999), UsageError)
    assert isinstance(diagnose(stderr_of("strlen"), exit_code=1), UsageError)


def test_verifier_rejection_keeps_the_whole_log_and_shows_its_end():
    log = stderr_of("verifier_verbose").partition("Error log:")[2]
    err = diagnose(stderr_of("verifier"), exit_code=255, verifier_log=log)
    assert isinstance(err, VerifierError)
    assert err.log == log
    assert "The sequence of 8193 jumps is too complex." in str(err)
    bare = diagnose(stderr_of("verifier"), exit_code=255)
    assert isinstance(bare, VerifierError) and "Error loading program" in bare.log


def test_stack_limit_is_reported_with_the_512_byte_reason():
    err = diagnose(stderr_of("stack_limit"), exit_code=1)
    assert isinstance(err, VerifierError) and "512 bytes" in str(err)


def test_unknown_failures_still_raise_a_probe_error():
    err = diagnose("ERROR: something new\n", exit_code=1)
    assert type(err) is ProbeError and "something new" in str(err)


# --------------------------------------------------------------------------- backend, nothing started

def test_ebpf_lab_bpftrace_is_callable_whatever_was_imported_first():
    import subprocess
    import sys

    code = ("import ebpf_lab.bpftrace, ebpf_lab.magic\nimport ebpf_lab\n"
            "assert callable(ebpf_lab.bpftrace), type(ebpf_lab.bpftrace)\n"
            "from ebpf_lab import BpftraceResult, load_ipython_extension\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_missing_privileges_are_reported_before_anything_starts(monkeypatch):
    import ebpf_lab.bpftrace as backend
    from ebpf_lab import privileges
    from ebpf_lab.errors import PrivilegeError

    monkeypatch.setattr(privileges, "missing_capabilities", lambda *a: ("CAP_BPF", "CAP_PERFMON"))
    monkeypatch.setattr(backend, "_find_bpftrace", lambda: "/usr/bin/bpftrace")
    started = []
    monkeypatch.setattr("ebpf_lab.session.ProbeRun.popen", lambda *a, **k: started.append(a))
    with pytest.raises(PrivilegeError, match="CAP_BPF"):
        backend.bpftrace("BEGIN { exit(); }")
    assert started == []


def test_missing_bpftrace_says_how_to_install_it(monkeypatch):
    import ebpf_lab.bpftrace as backend
    from ebpf_lab.errors import BackendMissingError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendMissingError, match="apt-get install bpftrace"):
        backend.bpftrace("BEGIN { exit(); }")


@pytest.mark.parametrize("kwargs, needle", [
    ({"strlen": 201}, "at most 200"), ({"strlen": 0}, "at most 200"), ({"duration": 0}, "positive"),
    ({"timeout": 1, "duration": 5}, "shorter than"), ({"columns": ""}, "names no column"),
])
def test_bad_arguments_are_usage_errors(kwargs, needle):
    import ebpf_lab.bpftrace as backend

    with pytest.raises(UsageError, match=needle):
        backend.bpftrace("BEGIN { exit(); }", **kwargs)
    with pytest.raises(UsageError, match="empty"):
        backend.bpftrace("  ")


def test_kprobe_wildcard_without_a_function_list_is_not_supported():
    out = [ln for ln in (FX / "kprobe_wildcard.jsonl").read_text().splitlines() if bj.parse_line(ln) is None]
    err = diagnose(stderr_of("kprobe_wildcard"), stdout=out, exit_code=1, program=program_of("kprobe_wildcard"))
    assert isinstance(err, NotSupportedError) and err.feature == "kprobes"
    # the same "No probes to attach" for a uprobe stays an unknown probe
    assert isinstance(diagnose(stderr_of("kprobe_wildcard"), stdout=out, exit_code=1,
                               program="uprobe:/bin/true:nosuch* {}"), UnknownProbeError)


def test_kprobes_that_bpftrace_skipped_are_not_supported():
    # bpftrace 0.17 skips them and runs on with nothing attached; the backend stops it
    err = diagnose(stderr_of("kprobe_skip"), exit_code=0, program="kretprobe:vfs_read, kprobe:nosuchfn_xyz {}")
    assert isinstance(err, NotSupportedError) and err.feature == "kprobes"


def test_program_maps_ignores_comments_and_strings():
    prog = '''/* example output:
     * @[comm]: 23
     * [4, 8)   23 |@@@@@@@@|
     */
    // @old[1, 2] = sum(3)
    t:a:b { printf("@x[1,2] = count() http://x\\n"); @[comm, pid] = count(); }'''
    assert bj.program_maps(prog) == {"@": {"arity": 2, "func": "count"}}
