"""Grading a class: submissions/<learner>/exercises/... -> gradebook.csv + one report per learner.

unit: learner discovery, statuses, the CSV layout and the command line, with the
grader replaced by a stand-in. privileged: real grading of four learners on
exercise 01.1 (a correct answer, the untouched stub, nothing handed in, a
program that does not parse).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from ebpf_lab.errors import UsageError
from ebpf_lab.grader import classroom, exercises, resolve
from ebpf_lab.grader.home import find_home
from ebpf_lab.grader.model import CheckResult, ExerciseResult, GradeReport

SPEC = resolve("01.1")[0]


def _hand_in(root: Path, learner: str, text: str | None, spec=SPEC) -> None:
    folder = root / learner / "exercises" / spec.chapter
    folder.mkdir(parents=True, exist_ok=True)
    if text is not None:
        (folder / spec.filename).write_text(text)


@pytest.mark.unit
def test_find_learners(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        classroom.find_learners(tmp_path / "nope")
    with pytest.raises(UsageError, match="no learner folder"):
        classroom.find_learners(tmp_path)
    _hand_in(tmp_path, "zoe", None)
    _hand_in(tmp_path, "al.ice", "x")
    (tmp_path / "not-a-learner").mkdir()
    assert classroom.find_learners(tmp_path) == ["al.ice", "zoe"]
    _hand_in(tmp_path, "bad name", None)
    with pytest.raises(UsageError, match="not plain names"):
        classroom.find_learners(tmp_path)


@pytest.mark.unit
def test_spec_points_and_statuses():
    assert classroom.spec_points(SPEC) == 4     # 01.1: keyed (1) + exact (2) + hidden (1)
    assert all(classroom.spec_points(s) > 0 for s in exercises().values())

    def ex(*statuses, error=""):
        pts = {"passed": 1, "partial": 0.5, "failed": 0, "skipped": 0}
        return ExerciseResult("9.9", "t", "p", [CheckResult(f"c{i}", 1, pts[s], s) for i, s in enumerate(statuses)],
                              error=error)

    assert classroom._status(ex("passed", "passed")) == "passed"
    assert classroom._status(ex("passed", "failed")) == "partial"
    assert classroom._status(ex("failed", "failed")) == "failed"
    assert classroom._status(ex("skipped")) == "skipped"
    assert classroom._status(ex("passed", error="boom")) == "error"


@pytest.fixture
def fake_grade(monkeypatch):
    """A stand-in grader: a file containing 'good' passes, anything else fails; records its calls."""
    calls = []

    def grade(targets, *, home, seed=None, **_kw):
        spec = resolve(targets)[0]
        path = Path(home) / "exercises" / spec.relpath()
        calls.append((Path(home).name, spec.id, seed))
        good = "good" in path.read_text()
        return GradeReport([ExerciseResult(spec.id, spec.title, str(path), [
            CheckResult("visible", 3, 3 if good else 0, "passed" if good else "failed", "" if good else "try again"),
            CheckResult("secret", 1, 1 if good else 0, "passed" if good else "failed", "the answer", hidden=True,
                        hidden_number=1)])])

    monkeypatch.setattr("ebpf_lab.grader.grade", grade)
    return calls


@pytest.mark.unit
def test_gradebook_csv_and_reports(tmp_path, fake_grade):
    subs, out = tmp_path / "submissions", tmp_path / "out"
    two = resolve("01.2")[0]
    _hand_in(subs, "alice", "good", SPEC)
    _hand_in(subs, "alice", "bad", two)
    _hand_in(subs, "bob", "bad", SPEC)
    lines = []
    res = classroom.grade_class(subs, out, ["01.1", "01.2"], seed=7, progress=lines.append, show_progress="off")
    with open(out / "gradebook.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == classroom.COLUMNS
    assert [(r["learner"], r["exercise"], r["score"], r["max_score"], r["status"]) for r in rows] == [
        ("alice", "01.1", "4", "4", "passed"),
        ("alice", "01.2", "0", "4", "failed"),
        ("bob", "01.1", "0", "4", "failed"),
        ("bob", "01.2", "0", str(classroom.spec_points(two)), "missing"),
    ]
    assert fake_grade == [("alice", "01.1", 7), ("alice", "01.2", 7), ("bob", "01.1", 8)]
    assert lines[0] == "alice 01.1: passed 4/4" and len(lines) == 4
    assert res.totals() == {"alice": (4.0, 8.0), "bob": (0.0, 4.0 + classroom.spec_points(two))}
    assert str(res.frame()["score"].dtype) == "float64"
    table = res.pivot()
    assert list(table.columns) == ["01.1", "01.2", "total", "max"]
    assert table.loc["alice"].tolist() == [4.0, 0.0, 4.0, 8.0]
    assert "<table" in res._repr_html_() and "gradebook.csv" in res._repr_html_()
    text = (out / "learners" / "alice.txt").read_text()
    assert "01.2" in text and "hidden check 1" in text and "the answer" not in text   # hidden stays hidden
    data = json.loads((out / "learners" / "bob.json").read_text())
    assert [e["id"] for e in data["exercises"]] == ["01.1"] and data["score"] == 0


@pytest.mark.unit
def test_command_line(tmp_path, fake_grade, capsys):
    _hand_in(tmp_path / "s", "alice", "good")
    assert classroom.main(["--submissions", str(tmp_path / "s"), "--out", str(tmp_path / "o"),
                           "--exercises", "01.1"]) == 0
    out = capsys.readouterr().out
    assert "alice  4/4" in out and "gradebook.csv" in out
    assert classroom.main(["--submissions", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert classroom.main(["--submissions", str(tmp_path / "s"), "--out", str(tmp_path / "o"),
                           "--exercises", "99.9"]) == 2
    assert classroom.main(["--out", "x"]) == 2           # --submissions is required


@pytest.mark.privileged
def test_real_class_of_four_on_exercise_01_1(tmp_path):
    home = find_home()
    subs, out = tmp_path / "submissions", tmp_path / "gradebook"
    _hand_in(subs, "alice", (home / "solutions" / SPEC.relpath()).read_text())
    _hand_in(subs, "bob", (home / "exercises" / SPEC.relpath()).read_text())
    _hand_in(subs, "carol", None)
    _hand_in(subs, "dave", "tracepoint:syscalls:sys_enter_getppid { @calls[comm] = count( }\n")
    res = classroom.grade_class(subs, out, ["01.1"], show_progress="off")
    got = {r["learner"]: (r["score"], r["max_score"], r["status"]) for r in res.rows}
    assert got == {"alice": (4, 4, "passed"), "bob": (0, 4, "failed"), "carol": (0, 4, "missing"),
                   "dave": (0, 4, "failed")}
    assert "syntax" in (out / "learners" / "dave.txt").read_text().lower()
    with open(res.gradebook, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    shutil.rmtree(subs)


# --------------------------------------------------------------------------- deployment for a class

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "jupyterhub"


def _load_hub_config(monkeypatch, tmp_path, **env):
    """Run deploy/jupyterhub/jupyterhub_config.py the way JupyterHub does (traitlets), with ``env``."""
    import ast

    from traitlets.config.loader import PyFileConfigLoader

    ast.parse((DEPLOY / "jupyterhub_config.py").read_text())
    for k in ("EBPF_LAB_LEARNER", "EBPF_LAB_TEACHER", "EBPF_LAB_TLS_CERT", "EBPF_LAB_TLS_KEY", "EBPF_LAB_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("EBPF_LAB_VM_MARKER", str(tmp_path / "marker"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return PyFileConfigLoader("jupyterhub_config.py", path=str(DEPLOY)).load_config()


@pytest.mark.unit
def test_hub_refuses_to_start_off_a_learner_vm(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="not a dedicated learner VM"):
        _load_hub_config(monkeypatch, tmp_path, EBPF_LAB_LEARNER="alice")
    (tmp_path / "marker").write_text("")
    with pytest.raises(SystemExit, match="EBPF_LAB_LEARNER"):
        _load_hub_config(monkeypatch, tmp_path)


@pytest.mark.unit
def test_hub_config_key_settings(monkeypatch, tmp_path):
    (tmp_path / "marker").write_text("")
    c = _load_hub_config(monkeypatch, tmp_path, EBPF_LAB_LEARNER="alice")
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"          # loopback unless TLS is given
    assert "ssl_cert" not in c.JupyterHub
    assert c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.Authenticator.allowed_users == {"alice"} and c.Authenticator.admin_users == set()
    assert c.JupyterHub.admin_access is False
    assert c.JupyterHub.spawner_class == "jupyterhub.spawner.SimpleLocalProcessSpawner"   # root, in this VM only
    assert "--MultiKernelManager.default_kernel_name=ebpf-lab" in c.Spawner.args
    assert "--ServerApp.ip=127.0.0.1" in c.Spawner.args
    assert c.Spawner.cmd == ["/opt/ebpf-lab/.venv/bin/jupyterhub-singleuser"]
    assert c.Spawner.notebook_dir == "/opt/ebpf-lab/notebooks"
    assert (Path(__file__).resolve().parents[1] / "notebooks" / Path(c.Spawner.default_url).name).exists()

    tls = _load_hub_config(monkeypatch, tmp_path, EBPF_LAB_LEARNER="alice", EBPF_LAB_TEACHER="prof",
                           EBPF_LAB_TLS_CERT="/c.pem", EBPF_LAB_TLS_KEY="/k.pem")
    assert tls.JupyterHub.bind_url.startswith("https://")
    assert (tls.JupyterHub.ssl_cert, tls.JupyterHub.ssl_key) == ("/c.pem", "/k.pem")
    assert tls.Authenticator.allowed_users == {"alice", "prof"} and tls.Authenticator.admin_users == {"prof"}


@pytest.mark.unit
def test_cloud_init_provisions_one_learner_vm_for_that_config():
    import ast

    import yaml

    text = (DEPLOY / "learner-vm.cloud-init.yaml").read_text()
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    learner = data["users"][0]
    assert not learner.get("sudo") and "sudo" not in learner.get("groups", [])     # the login is not root
    files = {f["path"]: f["content"] for f in data["write_files"]}
    config = (DEPLOY / "jupyterhub_config.py").read_text()
    marker = next(n.value.args[1].value for n in ast.walk(ast.parse(config))
                  if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "MARKER")
    assert marker in files                                                          # the config's guard is met
    env = dict(line.split("=", 1) for line in files["/etc/ebpf-lab/hub.env"].splitlines()
               if line and not line.startswith("#"))
    assert env["EBPF_LAB_LEARNER"] == learner["name"]
    unit = files["/etc/systemd/system/ebpf-lab-hub.service"]
    assert "-f /opt/ebpf-lab/deploy/jupyterhub/jupyterhub_config.py" in unit
    assert "EnvironmentFile=/etc/ebpf-lab/hub.env" in unit
    cmds = [" ".join(map(str, c)) for c in data["runcmd"]]
    assert any(c == "make -C /opt/ebpf-lab setup" for c in cmds)
