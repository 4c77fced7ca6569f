"""The program benchmark (components/tools/benchmark.py): its program child evaluates the stack as
the offline render does, and its ratio target is the one the performance docs state."""

from __future__ import annotations

import json
import subprocess
import sys

from components.tools import benchmark, render
from conftest import ROOT


def test_the_program_child_evaluates_the_stack_as_the_render_does():
    """With the parent's placeholder secrets: the same resources, to the byte, as in this process."""
    secrets = render.placeholder_secrets("dev", render.stack_config("dev"))
    done = subprocess.run([sys.executable, "-m", "components.tools.benchmark", "child", "program", "dev", json.dumps(secrets)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.splitlines()[-1])
    here = benchmark.evaluate("dev", render.stack_config("dev"))
    assert (figures["resources"], figures["digest"]) == (len(here.resources), benchmark.digest(here))
    assert "pulumi_docker" in {name.split(".")[0] for name in figures["provider_sdks"]}


def stack_figures(program: float, with_sdks: float) -> dict:
    return {"ratio": program / 0.2, "ratio_to_floor_with_provider_sdks": program / with_sdks, "digests": ["d"]}


def test_the_target_is_the_program_against_the_floor_with_its_sdks():
    figures = {"stacks": {"dev": stack_figures(0.9, 0.6), "prod": stack_figures(1.0, 0.6)},
               "scale": {"growth": [], "sizes": []},
               "in_process": {"dev": {"digest": "d", "footprint": {"bytes": 2**30}}, "prod": {"digest": "d"}},
               "deterministic": {"dev": True, "prod": True}}
    targets = {t["target"]: (t["met"], t["figure"]) for t in benchmark.targets(figures)}
    assert targets["dev: program / (floor + SDKs) at most 1.5"] == (True, "1.50")
    assert targets["prod: program / (floor + SDKs) at most 1.5"] == (False, "1.67")
