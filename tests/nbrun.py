"""What the notebook tests share: loading, the clean-commit checks, executing a
lesson in the ``ebpf-lab`` kernel, and reading what it printed.

Used by tests/test_notebooks.py (lessons 00-02) and tests/test_notebooks_03_05.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "ebpf-lab"
PER_NOTEBOOK_SECONDS = 180   # the whole notebook (pytest-timeout)
PER_CELL_SECONDS = 120       # any one cell (nbclient)
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", re.MULTILINE)


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def assert_committed_clean(name: str, builder: str) -> None:
    """No outputs, no execution counts, the lab's kernel."""
    nb = load(name)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{name}: cells {dirty} have outputs; rebuild with {builder}"
    assert nb.metadata["kernelspec"]["name"] == KERNEL


def assert_builder_fresh(builder: str) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / builder), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def problems(nb) -> list[str]:
    """Cell errors, and tracebacks printed on stderr (progress lines on stderr are fine)."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                if TRACEBACK.search(out.get("text", "")):
                    found.append(f"cell {i}: {out['text'][:800]}")
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return found


def images(nb) -> int:
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


def texts(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", ""))
            parts.extend(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def execute(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    """Run a lesson top to bottom from ``notebooks/``; fail on any cell error or traceback, or no plot."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    try:
        KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(f"Jupyter kernel {KERNEL!r} is not registered: run "
                    f"`{sys.executable} -m ipykernel install --sys-prefix --name {KERNEL}` (setup does this)")
    nb = load(name)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")   # hint progress etc. stay out of ~/.cache
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=PER_CELL_SECONDS,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        pytest.fail(f"{name}: a cell raised:\n{exc}")
    finally:
        nbformat.write(nb, tmp_path / name)  # the executed copy, for a look after a failure
    assert not problems(nb), "\n".join(problems(nb))
    assert images(nb) >= 1, f"{name} drew no plot"
    return nb
