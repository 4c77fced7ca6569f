"""The program runs on requirements.txt alone: every stack renders in a virtualenv that holds
exactly those pins (.ci/setup makes it, venv-runtime/), and none of the test or CI tools is in it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, STACKS

RUNTIME = ROOT / "venv-runtime" / "bin" / "python"
# Tools the tests and CI use, which `pulumi up` must never need.
TEST_TOOLS = {"pytest", "kubernetes-validate", "zizmor", "jsonschema", "mutmut", "pulumi-policy", "coverage"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line; `-r` includes are followed."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found |= pins(path.parent / line[3:].strip())
        elif line:
            name, version = line.split("==")
            found[canonical(name)] = version
    return found


@pytest.fixture(scope="module")
def runtime() -> Path:
    if not RUNTIME.is_file():
        message = f"{RUNTIME.parent.parent.name}/ is missing: bash .ci/setup makes it from requirements.txt"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return RUNTIME


def test_every_line_of_both_files_pins_one_version():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            assert not line or line == "-r requirements.txt" or re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][^\s=]*", line), (
                f"{name}: {line!r} is not a pin")


def test_the_runtime_file_has_no_test_tool_and_the_dev_file_adds_them():
    runtime, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    assert not TEST_TOOLS & set(runtime)
    assert TEST_TOOLS <= set(dev)
    assert dev.items() >= runtime.items(), "requirements-dev.txt installs the program's pins unchanged"


def test_the_runtime_virtualenv_holds_exactly_the_runtime_pins(runtime: Path):
    frozen = subprocess.run([str(runtime), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    installed = {canonical(n): v for n, v in (line.split("==") for line in frozen.splitlines() if "==" in line)}
    # pip and setuptools come with the virtualenv, not from the file.
    installed = {n: v for n, v in installed.items() if n not in ("pip", "setuptools", "wheel")}
    assert installed == pins(ROOT / "requirements.txt")


def test_every_stack_renders_with_the_runtime_requirements_alone(runtime: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = subprocess.run(
        [str(runtime), "-m", "components.tools.render", "--placeholder-secrets", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(STACKS)
    for stack in STACKS:
        assert (out / stack / "resources.json").stat().st_size > 0
