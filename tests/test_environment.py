"""environment.yml (for conda users) stays in step with pyproject.toml.

Same dependency names with the same version bounds, runtime and test together;
Python pinned to the version pyproject.toml allows; the lab itself installed
from the checkout; and never the unrelated PyPI project named ``bcc``.
"""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.unit

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def _split(requirement: str) -> tuple[str, str]:
    """'Foo_Bar[x] >= 1.2 ; marker' -> ('foo-bar', '>=1.2')  (PEP 503 name, bare specifier)."""
    m = _NAME.match(requirement.split(";", 1)[0])
    assert m, f"cannot parse requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    spec = re.sub(r"\s+", "", m.group(3))
    return name, spec


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def pyproject_requirements() -> dict[str, str]:
    project = _pyproject()["project"]
    reqs = list(project["dependencies"]) + list(project.get("optional-dependencies", {}).get("test", []))
    out = dict(_split(r) for r in reqs)
    assert len(out) == len(reqs), "a dependency is listed twice in pyproject.toml"
    return out


def environment_parts() -> tuple[dict[str, str], list[str], str]:
    """(requirements by name, pip lines that install the checkout, python spec)."""
    conda, pip_lines, python = {}, [], ""
    for dep in _environment()["dependencies"]:
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                if line.startswith("-e") or line.startswith(".") or "/" in line:
                    pip_lines.append(line)
                else:
                    name, spec = _split(line)
                    assert name not in conda, f"{name} listed twice in environment.yml"
                    conda[name] = spec
            continue
        name, spec = _split(dep.replace("=", "==", 1) if re.match(r"^[\w.-]+=[^=<>]", dep) else dep)
        if name == "python":
            python = spec
        elif name == "pip":
            continue
        else:
            assert name not in conda, f"{name} listed twice in environment.yml"
            conda[name] = spec
    return conda, pip_lines, python


def test_same_dependency_names():
    want, (have, _, _) = pyproject_requirements(), environment_parts()
    assert sorted(have) == sorted(want), (
        f"only in pyproject.toml: {sorted(set(want) - set(have))}; "
        f"only in environment.yml: {sorted(set(have) - set(want))}"
    )


def test_same_version_bounds():
    want, (have, _, _) = pyproject_requirements(), environment_parts()
    differ = {n: (want[n], have.get(n)) for n in want if have.get(n) != want[n]}
    assert not differ, f"bounds differ (pyproject, environment.yml): {differ}"


def test_python_matches_requires_python():
    _, _, python = environment_parts()
    requires = _pyproject()["project"]["requires-python"]
    assert python == "==3.11", f"environment.yml pins python {python!r}"
    assert requires == ">=3.11,<3.12", "update environment.yml's python pin together with requires-python"


def test_conda_env_installs_the_lab_from_the_checkout():
    _, pip_lines, _ = environment_parts()
    assert pip_lines == ["-e ."]
    assert _environment()["name"] == "ebpf-lab"


def test_never_the_pypi_bcc():
    # bcc comes from Debian's python3-bpfcc; the PyPI "bcc" is an unrelated library
    want, (have, _, _) = pyproject_requirements(), environment_parts()
    assert "bcc" not in want and "bcc" not in have


def test_split_normalises_names_and_specifiers():
    assert _split("Foo_Bar.baz[extra] >= 1.2 ; python_version < '4'") == ("foo-bar-baz", ">=1.2")
    assert _split("pytest") == ("pytest", "")
