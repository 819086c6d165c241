"""The two README commands: setup is idempotent, the lab serves on 127.0.0.1 only,
and CI runs exactly the README's test command.

Privileged tests run the real scripts (setup needs root; the lab runs as root);
unit tests read the files and run nothing that needs root.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT
from ebpf_lab.session import ProbeRun

VENV = ROOT / ".venv"


# --- helpers ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listeners(port: int) -> set[str]:
    """Addresses listening on TCP ``port`` in this network namespace (from /proc/net/tcp{,6})."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if fields[3] != "0A" or int(hexport, 16) != port:  # 0A = LISTEN
                continue
            raw = bytes.fromhex(addr)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http_status(url: str) -> tuple[int, dict]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def ci_commands() -> list[str]:
    """The commands .ci/run executes: lines that are not comments, `set` or `cd`."""
    cmds = []
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        line = line.split("#", 1)[0].strip() if not line.startswith("#!") else ""
        if not line or line.startswith(("set ", "cd ")):
            continue
        cmds.append(line.removeprefix("exec ").strip())
    return cmds


def readme_commands() -> dict[str, str]:
    """Quick-start commands in README.md: 'make test   # comment' -> {'make test': 'comment'}."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert block, "README.md needs a '## Quick start' section with a code block"
    cmds = {}
    for line in block.group(1).splitlines():
        cmd, _, comment = line.partition("#")
        if cmd.strip():
            cmds[" ".join(cmd.split())] = comment.strip()
    return cmds


# --- unit: the files agree with each other ----------------------------------------------

@pytest.mark.unit
def test_ci_runs_only_the_readme_test_command():
    cmds = ci_commands()
    assert cmds == ["make test"], f".ci/run should run the README's test command and nothing else: {cmds}"
    readme = readme_commands()
    assert "make test" in readme and "test" in readme["make test"]
    assert "make lab" in readme and "lab" in readme["make lab"].lower()
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


@pytest.mark.unit
def test_make_test_and_lab_run_setup_first():
    # make test also sets up the second kernel (QEMU, the stock image, virtme-ng): its tier is
    # part of the whole suite; make lab needs only the lab's own setup
    for target, then in (("test", ["scripts/setup_vm.sh", "scripts/test.sh"]), ("lab", ["scripts/lab.sh"])):
        out = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, check=True).stdout
        steps = [line for line in out.splitlines() if line.startswith("scripts/")]
        assert [s.split()[0] for s in steps] == ["scripts/setup.sh", *then], out


@pytest.mark.unit
@pytest.mark.parametrize("script", ["scripts/setup.sh", "scripts/lab.sh", "scripts/test.sh", ".ci/run"])
def test_scripts_parse_and_are_executable(script):
    path = ROOT / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.unit
def test_no_tests_collected_is_a_failure():
    # pytest says 5 when a selection matches nothing; scripts/test.sh must not report success
    res = subprocess.run(
        [str(ROOT / "scripts" / "test.sh"), "-q", "-p", "no:cacheprovider", "-m", "unit and not unit",
         str(Path(__file__).parent / "test_environment.py")],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "collected no tests" in res.stderr


@pytest.mark.unit
def test_lab_refuses_a_bad_port():
    env = {**os.environ, "LAB_PORT": "not-a-port"}
    res = subprocess.run([str(ROOT / "scripts" / "lab.sh")], capture_output=True, text=True, env=env,
                         stdin=subprocess.DEVNULL, timeout=60)
    assert res.returncode == 1
    assert "LAB_PORT=not-a-port is not a port number" in res.stderr and "Next step" in res.stderr


# --- privileged: the real thing ---------------------------------------------------------

@pytest.mark.privileged
def test_setup_rerun_takes_the_fast_path():
    setup = [str(ROOT / "scripts" / "setup.sh")]
    first = subprocess.run(setup, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
    assert first.returncode == 0, first.stdout + first.stderr
    again = subprocess.run(setup, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    out = again.stdout
    # already set up: nothing installed, linked, mounted or registered a second time
    assert "distro packages: all" in out
    assert "Python dependencies: up to date" in out
    assert "Jupyter kernel 'ebpf-lab': registered" in out
    for doing in ("apt-get update", "installing", "pip install", "linked ", "mounted ", "creating "):
        assert doing not in out, f"re-run did {doing!r}:\n{out}"
    assert "[setup] ready in" in out


@pytest.mark.privileged
def test_setup_left_a_working_machine():
    krel = os.uname().release
    build, source = Path(f"/lib/modules/{krel}/build"), Path(f"/lib/modules/{krel}/source")
    assert (build / "Makefile").is_file() and (build / "include").is_dir()
    assert source.is_dir()
    mounts = {line.split()[1]: line.split()[2] for line in Path("/proc/self/mounts").read_text().splitlines()}
    assert mounts.get("/sys/kernel/tracing") == "tracefs"
    assert mounts.get("/sys/kernel/debug") == "debugfs"
    # .venv is Debian's 3.11, sees bcc through one link, and nothing else of dist-packages
    probe = ("import sys, bcc, ebpf_lab; print(sys.version_info[:2] == (3, 11)); print(bcc.__file__); "
             "print(any('dist-packages' in p for p in sys.path))")
    res = subprocess.run([str(VENV / "bin" / "python"), "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    is311, bcc_file, sees_dist = res.stdout.split("\n")[:3]
    assert is311 == "True"
    assert bcc_file.startswith(str(VENV)) and os.path.realpath(bcc_file).startswith("/usr/lib/python3/dist-packages/bcc/")
    assert sees_dist == "False"
    kernel = VENV / "share" / "jupyter" / "kernels" / "ebpf-lab" / "kernel.json"
    assert '"display_name": "Python (ebpf-lab)"' in kernel.read_text()
    assert str(VENV / "bin" / "python") in kernel.read_text()


@pytest.mark.privileged
def test_lab_serves_on_localhost_only_with_a_token(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("LAB_TOKEN", "JUPYTER_TOKEN")}
    env.update(LAB_PORT=str(port), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = tmp_path / "lab.log"
    base = f"http://127.0.0.1:{port}"
    with ProbeRun() as run, open(log, "w") as out:
        proc = run.popen([str(ROOT / "scripts" / "lab.sh")], stdout=out, stderr=subprocess.STDOUT, env=env)
        token, status, deadline = None, None, time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"lab.sh exited with {proc.returncode}:\n{log.read_text()}"
            if token is None:
                m = re.search(r"^\s*token:\s+(\S+)\s*$", log.read_text(), re.M)
                token = m and m.group(1)
            if token:
                try:
                    status, _ = http_status(f"{base}/api/status?token={token}")
                except OSError:
                    status = None
                if status == 200:
                    break
            time.sleep(0.5)
        banner = log.read_text()
        assert token, f"no token printed:\n{banner}"
        assert status == 200, f"JupyterLab did not answer in time:\n{banner}"
        assert len(token) >= 32
        assert f"{base}/lab?token={token}" in banner
        assert f"ssh -L {port}:127.0.0.1:{port}" in banner

        # listening on the loopback address only, never on 0.0.0.0 or ::
        assert listeners(port) == {"127.0.0.1"}

        # without the token (or with a wrong one), nothing is served
        assert http_status(f"{base}/api/status")[0] == 403
        assert http_status(f"{base}/api/status?token={token[::-1]}")[0] == 403
        code, headers = http_status(f"{base}/lab")
        assert code == 302 and "/login" in headers.get("Location", "")

        # notebooks/ is the root, and the ebpf-lab kernel is the default
        req = urllib.request.urlopen(f"{base}/api/kernelspecs?token={token}", timeout=10)
        specs = json.load(req)
        assert specs["default"] == "ebpf-lab"
        assert specs["kernelspecs"]["ebpf-lab"]["spec"]["display_name"] == "Python (ebpf-lab)"
        assert f"Serving notebooks from local directory: {ROOT / 'notebooks'}" in log.read_text()
        pgid = proc.pid
    # ProbeRun killed the whole process group
    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert listeners(port) == set()
