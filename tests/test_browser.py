"""The lab in a real browser: JupyterLab started by scripts/lab.sh, driven by headless Chromium.

What a learner does on day one: open notebook 01 and run its first cells with
Shift+Enter. The test checks that a DataFrame table and a plot render, that no
cell shows a traceback, that the live view's widgets render and its Stop
button ends the run, and that the server listens on 127.0.0.1 only and
refuses requests without the token. A screenshot is kept in
artifacts/browser/ (gitignored).

Needs Debian's chromium (``apt-get install chromium``) and the ``playwright``
wheel (its driver only: never ``playwright install``). Deselect with
``-m 'not browser'``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_bpftrace_basics.ipynb"
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _first_plot_cell() -> int:
    """Index of notebook 01's first cell that draws a figure (``plots.``): run up to it."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and "plots." in "".join(c["source"]))


PLOT_CELL = _first_plot_cell()      # 21 when this was written
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

pytestmark = [pytest.mark.browser, pytest.mark.privileged]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listen_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                if len(addr) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = bytes.fromhex(addr)
                    found.add(socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))
    return found


def _api(port: int, path: str, token: str | None, method: str = "GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", f"token {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
        return resp.status, (json.loads(body) if body else None)


@pytest.fixture
def lab(tmp_path, no_leaks):
    """scripts/lab.sh on a free port with a known token; every kernel and the server stopped after.

    Requests ``no_leaks`` so that its check runs after the server is gone.
    """
    # `make setup` installs both; missing means setup did not run (a failure, not a kernel feature to skip)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright wheel is not installed. Next step: `make setup`, or "
                    ".venv/bin/pip install -e '.[test]' (never `playwright install`: Debian's chromium is used)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing. Next step: `make setup` (it installs the chromium package), "
                    "or apt-get install chromium; deselect this tier with -m 'not browser'")
    from ebpf_lab.session import kill_process_group

    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    # never write the learner-facing notebook in the shared checkout: no autosave
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = dict(os.environ, LAB_PORT=str(port), LAB_TOKEN=token,
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    before = NOTEBOOK.read_bytes()
    checkpoints = ROOT / "notebooks" / ".ipynb_checkpoints"
    had_checkpoints = checkpoints.exists()
    log = open(tmp_path / "lab.log", "w+b")
    proc = subprocess.Popen([str(ROOT / "scripts" / "lab.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if _api(port, "/api/status", token)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"scripts/lab.sh did not serve on port {port}:\n{log.read().decode()[-3000:]}")
            time.sleep(0.3)
        yield {"port": port, "token": token, "proc": proc}
    finally:
        try:
            for k in _api(port, "/api/kernels", token)[1] or []:
                _api(port, f"/api/kernels/{k['id']}", token, method="DELETE")
        except Exception:  # noqa: BLE001 - the server may be gone already; stop it anyway
            pass
        kill_process_group(proc)
        log.close()
        after = NOTEBOOK.read_bytes()
        if after != before:
            NOTEBOOK.write_bytes(before)
        if not had_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
        assert after == before, "the browser session wrote notebook 01 (autosave should be off); restored"


def test_notebook_01_runs_in_jupyterlab_and_renders_tables_plots_and_widgets(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    port, token = lab["port"], lab["token"]
    # the server's safety: loopback only, and nothing without the token
    assert _listen_addresses(port) == {"127.0.0.1"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        _api(port, "/api/kernels", None)
    assert refused.value.code == 403

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000})
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}")
            cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
            expect(cells.first).to_be_visible(timeout=90_000)
            _wait_kernel_idle(port, token)

            cells.first.click()
            page.keyboard.press("Escape")                   # command mode
            for _ in range(PLOT_CELL + 1):                   # run cells 0..21, as a learner would
                page.keyboard.press("Shift+Enter")
            plot = cells.nth(PLOT_CELL).locator(".jp-OutputArea-output img[src^='data:image/png']")
            expect(plot).to_be_visible(timeout=240_000)
            _wait_kernel_idle(port, token)

            tables = page.locator(".jp-OutputArea-output table.dataframe")
            assert tables.count() >= 3                        # list_probes, paths, events, maps...
            prompts = [cells.nth(i).locator(".jp-InputPrompt").inner_text() for i in range(PLOT_CELL + 1)]
            assert not [p for p in prompts if "*" in p], prompts   # nothing still running
            errors = [t for t in page.locator(STDERR).all_inner_texts() if "Traceback" in t or "Error" in t]
            assert not errors, errors
            page.screenshot(path=str(ARTIFACTS / "notebook01.png"), full_page=True)

            # the live view: widgets render, the chart updates, Stop ends the run and keeps the counts
            page.keyboard.press("Escape")
            page.keyboard.press("b")                          # a new cell below
            page.keyboard.press("Enter")
            page.keyboard.insert_text("from ebpf_lab.widgets import live_syscalls\n"
                                      "view = live_syscalls(command=workload('sleep', 120000), interval=0.5)\n"
                                      "view")
            page.keyboard.press("Shift+Enter")
            live = page.locator(".jp-OutputArea-output .widget-box")
            stop = live.locator("button", has_text="Stop")
            expect(stop).to_be_visible(timeout=60_000)
            expect(live.locator("img[src^='blob:'], img[src^='data:image']").first).to_be_visible()
            expect(live.locator(".widget-html", has_text="running").first).to_be_visible(timeout=30_000)
            stop.click()
            expect(live.locator(".widget-html", has_text="stopped").first).to_be_visible(timeout=30_000)
            expect(stop).to_be_disabled()
            expect(live.locator("table.ebpf-lab-top").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "live_view.png"), full_page=True)

            # the probe picker: it renders, and picker.insert() (set_next_input) makes the next cell,
            # which runs as a %%bpftrace cell and shows its events as a table
            live_cell = cells.filter(has_text="live_syscalls(command=")
            live_cell.locator(".jp-InputPrompt").click()      # focus back on the notebook, off the widget
            page.keyboard.press("Escape")
            page.keyboard.press("b")
            page.keyboard.press("Enter")
            page.keyboard.insert_text("from ebpf_lab.widgets import ProbePicker\n"
                                      "picker = ProbePicker('tracepoint:syscalls:sys_enter_open*')\n"
                                      "display(picker)\n"
                                      "picker.select('tracepoint:syscalls:sys_enter_openat', ['filename'])\n"
                                      "picker.insert();")
            page.keyboard.press("Shift+Enter")
            expect(page.locator(".jp-OutputArea-output .widget-select select").first).to_be_visible(timeout=60_000)
            inserted = cells.filter(has_text="--columns comm,pid:int,filename")
            expect(inserted).to_have_count(1)
            inserted.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            expect(inserted.locator(".jp-OutputArea-output table.dataframe")).to_be_visible(timeout=60_000)
            expect(inserted.locator(".jp-OutputArea-output table.dataframe")).to_contain_text("/etc/ld.so.cache")
            page.screenshot(path=str(ARTIFACTS / "probe_picker.png"), full_page=True)
            errors = [t for t in page.locator(STDERR).all_inner_texts() if "Traceback" in t or "Error" in t]
            assert not errors, errors
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise
        finally:
            ctx.close()


def _wait_kernel_idle(port: int, token: str, timeout: float = 240) -> None:
    """Wait until the notebook's kernel exists and is idle (the REST API says so)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        sessions = _api(port, "/api/sessions", token)[1] or []
        mine = [s for s in sessions if s.get("path", "").endswith(NOTEBOOK.name)]
        if mine:
            state = mine[0]["kernel"].get("execution_state")
            if state == "idle":
                return
        time.sleep(0.5)
    pytest.fail(f"the notebook's kernel did not become idle within {timeout} s (last state: {state})")
