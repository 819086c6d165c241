"""The known workloads do exactly what they say (checked without any probe)."""

import os
import re
import socket

import pytest

from ebpf_lab.workloads import workload

pytestmark = pytest.mark.unit


def test_open_creates_exactly_the_expected_files():
    w = workload("open", 23, name="wlopen")
    out = w.run().stdout
    assert out.strip() == "opened=23 failed=0"
    assert sorted(os.listdir(w.expected["dir"])) == sorted(os.path.basename(p) for p in w.expected["paths"])
    assert os.path.basename(w[0]) == "wlopen" == w.comm


def test_open_missing_fails_every_open():
    w = workload("open_missing", 7)
    assert w.run().stdout.strip() == "opened=0 failed=7"


def test_getppid_reports_ns_per_syscall():
    out = workload("getppid", 1000).run().stdout
    assert re.fullmatch(r"ns_per_syscall=\d+\.\d\d\n", out)


def test_connect_counts_refused_and_accepted():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    try:
        assert workload("connect", 5, port=port).run().stdout.strip() == "connected=5 refused=0 denied=0"
    finally:
        srv.close()
    assert workload("connect", 3, port=port).run().stdout.strip() == "connected=0 refused=3 denied=0"


def test_read_and_fork():
    assert workload("read", 11, size=100).run().stdout.strip() == "reads=11 size=100"
    assert workload("fork", 3).run().stdout.strip() == "forks=3"


def test_long_names_are_truncated_to_comm_length():
    assert workload("sleep", 1, name="a" * 20).comm == "a" * 15
