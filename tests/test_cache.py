"""One cache directory for the whole lab (ebpf_lab._cache), honoured by every module that writes there."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpf_lab import _cache, doctor, syscalls, workloads
from ebpf_lab.grader import hints

pytestmark = pytest.mark.unit


def test_the_override_wins_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv("EBPF_LAB_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.cache_dir() == tmp_path / "home" / ".cache" / "ebpf-lab"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == tmp_path / "xdg" / "ebpf-lab"
    monkeypatch.setenv("EBPF_LAB_CACHE_DIR", str(tmp_path / "lab"))
    assert _cache.cache_dir() == tmp_path / "lab"


def test_every_writer_uses_it(monkeypatch, tmp_path):
    """A guest kernel sees the host's home read-only: one variable must move every write."""
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("EBPF_LAB_CACHE_DIR", str(scratch))
    assert Path(doctor.cache_path()).parent == scratch
    assert hints.progress_file().parent == scratch
    assert syscalls.cache_path().parent == scratch
    built = workloads.build_helper("labhold")
    assert built.parent == scratch and built.exists()
