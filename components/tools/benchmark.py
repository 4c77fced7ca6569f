"""Performance and scale (issue 8): a benchmark anyone can rerun. A script, not a test.

    venv/bin/python -m components.tools.benchmark [--out FILE.json] [--sizes 10,100,1000] [--repeat N]

It prints Markdown tables and writes every figure as JSON to --out (default: benchmark.json in the
current folder, which git ignores). Everything runs under the mock engine of components/tools/render.py:
no Pulumi CLI, Docker engine or cluster. docs/performance.md shows a run and reads it.

What each figure means:

- program / (floor + SDKs): the time to evaluate each stack file as a whole process, beside the
  floor. Every measured evaluation is a fresh child process (`python -m components.tools.benchmark
  child ...`), timed here from its start to its exit, so interpreter start and every import count.
  The program child runs __main__.py for the stack as `pulumi up` would: the stack file's config,
  with the placeholder secrets `python -m components.tools.render` uses, worked out by the parent
  beforehand (finding which secrets a stack requires validates its settings once more, which no
  deployment does). The program's own modules are compiled once before any child runs, as pip
  compiles the SDKs' when it installs them. The floor child starts the same interpreter, imports
  the same mock engine (components.tools.render: pulumi, its runtime, yaml, and the stack file
  reader with the settings models it imports, pydantic included), sets up the same mocks and
  registers as many bare resources (a CustomResource of a dummy type, with no inputs) as the
  program did. The floor + SDKs child does the same after importing the provider SDK modules the
  program loaded (pulumi_kubernetes, pulumiverse_grafana, ...). What the program takes above that
  is its own work (settings, rendering, checking, building inputs) and Pulumi's per-resource work
  on the typed SDK classes. All children end by digesting what they registered, the same way.
  Times are the median of --repeat runs; peak memory is the child's peak RSS (ru_maxrss).
  Target: program / (floor + SDKs) at most 1.5. program / floor is reported beside it: importing
  the typed SDKs alone costs more than the bare floor.
- scale: the dev stack plus N static scrape targets (one job each), N user dashboards and N
  extra alert rules in a copy of the alert catalog, for each N of --sizes; whole-process time
  (median) and peak RSS. The dashboards and catalog are written to a temporary folder; the
  repository's configs are not touched. Targets: from one size to the next, time grows no more
  than the size does; the 1,000 case evaluates in under 10 s.
- blast radius: per stack, the resources whose inputs change when one alert threshold changes
  (alerts.overrides), and when one user dashboard changes (its title). Target: only the
  resources that carry the changed content, and on kubernetes the pods that mount it.
- determinism: every evaluation of a stack (each program child, and one more in this process
  after evaluating the other stacks) gives the same digest of every resource's urn, parent and
  inputs (secret markers included).
- footprint: the sum of memory limits. Docker: every container's memory limit (one host).
  Kubernetes: limits x replicas of each StatefulSet and Deployment; separately the DaemonSets'
  limits, which take that much on every node (or on every node a nodeSelector picks, said
  apart). Target: dev at most 4 GiB.

A profile of one evaluation: venv/bin/python -m cProfile -s cumtime -m components.tools.benchmark child program prod
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from datetime import date
from pathlib import Path

import pulumi
import yaml

# The floor imports this module too: keep its imports to what the floor itself needs (the mock
# engine). The program's own modules are imported where the program's side needs them.
from components.tools import render

OUT = Path("benchmark.json")
# program / (floor + the provider SDK modules the program imports): importing the typed SDKs
# alone costs more than the bare floor, so the target is set above them (program / floor is
# reported beside it).
RATIO_TARGET = 1.5
SCALE_SECONDS_TARGET = 10.0
DEV_MEMORY_TARGET = 4 * 2**30
# The threshold change: an alert every stack renders (it requires no exporter), set to a value
# no stack uses.
ALERT, THRESHOLD = "HttpErrorRateHigh", 12.5


# --- the child processes ---------------------------------------------------------------------------


def digest(run: render.Run) -> str:
    """Every resource's urn, parent and inputs (secret markers kept), canonical JSON, hashed."""
    resources = sorted(({"urn": r.urn, "parent": r.parent, "inputs": r.raw_inputs} for r in run.resources),
                       key=lambda r: r["urn"])
    return hashlib.sha256(json.dumps(resources, sort_keys=True).encode()).hexdigest()


def evaluate(stack: str, config: dict, secrets: dict | None = None) -> render.Run:
    """The program for a stack configuration, with placeholder secrets, as components.tools.render
    runs it (`secrets`: those placeholders, worked out beforehand)."""
    plain = {k: v for k, v in config.items() if k != "secrets"}
    return render.run_program(stack, plain, render.placeholder_secrets(stack, config) if secrets is None else secrets)


class Bare(pulumi.CustomResource):
    """A resource with no inputs. Its own __init__, as every provider SDK class has: Pulumi records
    where user code created a resource by looking for that third constructor on the stack."""

    def __init__(self, name: str):
        super().__init__("benchmark:index:Bare", name, {})


def floor(count: int, modules: list[str]) -> render.Run:
    """Import `modules`, then register `count` bare resources under the mocks run_program sets up."""
    for module in modules:
        importlib.import_module(module)
    run = render.Run("floor")
    mocks = render.RecordingMocks(run)
    pulumi.runtime.set_mocks(mocks, project=render.NAMESPACE, stack="floor", preview=False,
                             monitor=render.RecordingMonitor(mocks))
    pulumi.runtime.test(lambda: [Bare(f"bare-{i}") for i in range(count)])()
    return run


def scale(directory: Path) -> render.Run:
    """The synthetic stack scale_inputs() wrote: its dashboards and catalog stand in for the real ones."""
    from components.alerting import alert_rules
    from components.grafana import dashboards

    dashboards.USER_DASHBOARDS = directory / "dashboards"
    alert_rules.CATALOG = directory / "catalog.yml"
    return evaluate("dev", json.loads((directory / "config.json").read_text()))


def provider_sdks() -> list[str]:
    """The provider SDK modules loaded so far, in the order they were loaded. Every Pulumi
    provider's package is pulumi_* or pulumiverse_*; a module the SDK registered for lazy loading
    but nothing has used yet is still of a subclass of ModuleType, and is left out."""
    return [name for name, module in sys.modules.items()
            if name.split(".")[0].startswith(("pulumi_", "pulumiverse_")) and type(module) is types.ModuleType]


def child(kind: str, argument: str, modules: str = "") -> None:
    """One measured evaluation; prints its figures as one JSON line."""
    if kind == "program":
        # The secrets as `pulumi up` hands them over: worked out by the parent, since finding
        # which ones the stack requires validates its settings once more, which no deployment does.
        # (Without them, as when profiling one child by hand, the child works them out itself.)
        run = evaluate(argument, render.stack_config(argument), json.loads(modules) if modules else None)
    elif kind == "floor":
        run = floor(int(argument), modules.split(",") if modules else [])
    else:
        run = scale(Path(argument))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"resources": len(run.resources), "digest": digest(run), "peak_rss_mib": peak_kib / 1024,
                      "provider_sdks": provider_sdks()}))


def measure(kind: str, *arguments: str) -> dict:
    """Run one child process; its figures, and its wall time from start to exit."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "components.tools.benchmark", "child", kind, *arguments],
                          cwd=render.ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"benchmark child {kind} {arguments[0]} failed:\n{done.stderr}")
    return {**json.loads(done.stdout.splitlines()[-1]), "seconds": seconds}


def summary(runs: list[dict]) -> dict:
    """Median time and highest peak memory of repeated runs."""
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "runs_seconds": [r["seconds"] for r in runs],
    }


# --- the figures ---------------------------------------------------------------------------------


def program_vs_floor(stacks: list[str], repeat: int) -> dict:
    found = {}
    for stack in stacks:
        programs, floors, sdk_floors = [], [], []
        secrets = json.dumps(render.placeholder_secrets(stack, render.stack_config(stack)))
        # Alternating, so a slow moment of the machine falls on every side alike.
        for _ in range(repeat):
            programs.append(measure("program", stack, secrets))
            count = str(programs[-1]["resources"])
            floors.append(measure("floor", count))
            sdk_floors.append(measure("floor", count, ",".join(programs[-1]["provider_sdks"])))
        program, bare, with_sdks = summary(programs), summary(floors), summary(sdk_floors)
        found[stack] = {
            "resources": programs[0]["resources"],
            "program": program,
            "floor": bare,
            "ratio": program["seconds"] / bare["seconds"],
            # The target's floor: the same, after importing the provider SDK modules the program
            # loaded. What is left above it is the program's own work.
            "floor_with_provider_sdks": with_sdks,
            "ratio_to_floor_with_provider_sdks": program["seconds"] / with_sdks["seconds"],
            "provider_sdk_modules": len(programs[0]["provider_sdks"]),
            "digests": [p["digest"] for p in programs],
        }
    return found


def first_folder(config: dict) -> str:
    """The uid of the stack's first Grafana folder: where a user dashboard may go."""
    from components.settings import GrafanaSettings, folder_uid

    return folder_uid(GrafanaSettings.model_validate(config.get("grafana", {})).folders[0])


def scale_inputs(size: int, directory: Path) -> None:
    """dev plus `size` scrape targets, user dashboards and alert rules, as files in `directory`."""
    from components.alerting import alert_rules

    config = render.stack_config("dev")
    prometheus = config.get("prometheus", {})
    targets = [{"job": f"bench-{i:04d}", "targets": [f"bench-{i:04d}.example.internal:9100"]} for i in range(size)]
    config["prometheus"] = {**prometheus, "scrape_targets": [*prometheus.get("scrape_targets", []), *targets]}
    (directory / "config.json").write_text(json.dumps(config))

    folder = directory / "dashboards" / first_folder(config)
    folder.mkdir(parents=True)
    for i in range(size):
        expr = f'sum(rate(http_requests_total{{job="bench-{i:04d}"}}[$__rate_interval]))'
        model = {
            "uid": f"bench-{i:04d}", "title": f"Benchmark {i:04d}", "schemaVersion": 39,
            "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
            "panels": [{"id": 1, "type": "timeseries", "title": "Requests", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 8},
                        "datasource": {"type": "prometheus", "uid": "${datasource}"},
                        "targets": [{"refId": "A", "expr": expr}]}],
        }
        (folder / f"bench-{i:04d}.json").write_text(json.dumps(model))

    catalog = yaml.safe_load(alert_rules.CATALOG.read_text())
    catalog["groups"].append({"name": "benchmark", "alerts": [
        {
            "name": f"BenchmarkErrors{i:04d}",
            "expr": f'sum by (job) (rate(bench_errors_total{{job="bench-{i:04d}"}}[${{window}}])) > ${{threshold}}',
            "threshold": 1, "for": "5m", "severity": "warning",
            "summary": "A synthetic job reports errors.",
            "description": f"{{{{ $labels.job }}}} reports errors (benchmark alert {i}).",
        }
        for i in range(size)
    ]})
    (directory / "catalog.yml").write_text(yaml.safe_dump(catalog, sort_keys=False))


def scaling(sizes: list[int], repeat: int) -> dict:
    found = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as scratch:
            scale_inputs(size, Path(scratch))
            runs = [measure("scale", scratch) for _ in range(repeat)]
        found.append({"size": size, "resources": runs[0]["resources"], **summary(runs)})
    growth = [
        {
            "from": a["size"], "to": b["size"],
            "size_ratio": b["size"] / a["size"],
            "time_ratio": b["seconds"] / a["seconds"],
            # What each added item costs: a rise from one step to the next means more than linear.
            "ms_per_added_item": 1000 * (b["seconds"] - a["seconds"]) / (b["size"] - a["size"]),
        }
        for a, b in zip(found, found[1:])
    ]
    return {"sizes": found, "growth": growth}


def changed(before: render.Run, after: render.Run) -> list[str]:
    """'type name' of every resource added, removed or given other inputs."""
    old = {r.urn: r for r in before.resources}
    new = {r.urn: r for r in after.resources}
    found = []
    for urn in sorted(old.keys() | new.keys()):
        if urn not in old or urn not in new or old[urn].raw_inputs != new[urn].raw_inputs:
            r = new.get(urn) or old[urn]
            found.append(f"{r.type} {r.name}")
    return found


def with_threshold(config: dict) -> dict:
    alerts = config.get("alerts", {})
    overrides = alerts.get("overrides", {})
    override = {**overrides.get(ALERT, {}), "threshold": THRESHOLD}
    return {**config, "alerts": {**alerts, "overrides": {**overrides, ALERT: override}}}


def dashboard_change(stack: str, config: dict) -> list[str]:
    """The resources that change when one user dashboard's title changes."""
    from unittest import mock

    from components.grafana import dashboards

    folder = first_folder(config)
    with tempfile.TemporaryDirectory() as scratch, mock.patch.object(dashboards, "USER_DASHBOARDS", Path(scratch)):
        path = Path(scratch) / folder / "blast-radius.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"uid": "blast-radius", "title": "Blast radius"}))
        before = evaluate(stack, config)
        path.write_text(json.dumps({"uid": "blast-radius", "title": "Blast radius, changed"}))
        return changed(before, evaluate(stack, config))


def footprint(run: render.Run) -> dict:
    """Sum of memory limits, bytes: of everything placed once, of what runs on every node, and of
    each DaemonSet that runs only on the nodes its nodeSelector picks (the GPU exporter)."""
    from components.settings import quantity

    once = per_node = 0.0
    selected_nodes = {}
    for r in run.of_type("docker:index/container:Container"):
        once += r.inputs["memory"] * 2**20  # the docker provider takes MiB
    for r in run.resources:
        if r.type in render.CONTROLLERS:
            spec = r.inputs["spec"]
            pod = spec["template"]["spec"]
            limits = sum(quantity(c["resources"]["limits"]["memory"]) for c in pod["containers"])
            if r.type != "kubernetes:apps/v1:DaemonSet":
                once += limits * spec.get("replicas", 1)
            elif pod.get("nodeSelector"):
                selected_nodes[r.name] = limits
            else:
                per_node += limits
    return {"bytes": once, "per_node_bytes": per_node, "per_selected_node_bytes": selected_nodes}


def in_process(stacks: list[str]) -> dict:
    """Blast radius, a further digest and the footprint, from evaluations in this process."""
    found = {}
    for stack in stacks:
        config = render.stack_config(stack)
        baseline = evaluate(stack, config)
        found[stack] = {
            "digest": digest(baseline),
            "footprint": footprint(baseline),
            "blast_radius": {
                "alert_threshold": changed(baseline, evaluate(stack, with_threshold(config))),
                "dashboard": dashboard_change(stack, config),
            },
        }
    return found


# --- the report ----------------------------------------------------------------------------------


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    return {"os": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1),
            # Other work on the machine slows every figure; the load says how busy it was.
            "load_average_at_start": os.getloadavg()[0]}


def gib(amount: float) -> str:
    return f"{amount / 2**30:.2f} GiB"


def targets(figures: dict) -> list[dict]:
    stacks, scale_, stacks_in = figures["stacks"], figures["scale"], figures["in_process"]
    found = [
        {"target": f"{stack}: program / (floor + SDKs) at most {RATIO_TARGET}",
         "met": s["ratio_to_floor_with_provider_sdks"] <= RATIO_TARGET,
         "figure": f"{s['ratio_to_floor_with_provider_sdks']:.2f}"}
        for stack, s in stacks.items()
    ]
    found += [
        {"target": f"scale {g['from']} to {g['to']}: time grows no more than the size (x{g['size_ratio']:g})",
         "met": g["time_ratio"] <= g["size_ratio"], "figure": f"x{g['time_ratio']:.2f}"}
        for g in scale_["growth"]
    ]
    found += [
        {"target": f"scale {s['size']}: under {SCALE_SECONDS_TARGET:g} s", "met": s["seconds"] < SCALE_SECONDS_TARGET,
         "figure": f"{s['seconds']:.2f} s"}
        for s in scale_["sizes"] if s["size"] == 1000
    ]
    found += [
        {"target": f"{stack}: two evaluations give identical inputs", "met": figures["deterministic"][stack],
         "figure": f"{len(stacks[stack]['digests'] + [stacks_in[stack]['digest']])} evaluations"}
        for stack in stacks
    ]
    if "dev" in stacks_in:
        dev = stacks_in["dev"]["footprint"]["bytes"]
        found.append({"target": "dev: memory limits at most 4 GiB", "met": dev <= DEV_MEMORY_TARGET, "figure": gib(dev)})
    return found


def limits(footprint: dict) -> str:
    text = gib(footprint["bytes"])
    if footprint["per_node_bytes"]:
        text += f" + {gib(footprint['per_node_bytes'])} per node"
    for name, amount in footprint["per_selected_node_bytes"].items():
        text += f" + {gib(amount)} per node {name} runs on"
    return text


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report(figures: dict) -> str:
    m = figures["machine"]
    stacks, scale_, stacks_in = figures["stacks"], figures["scale"], figures["in_process"]
    parts = [
        f"Measured {figures['date']} on {m['os']}, Python {m['python']}, {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gib']} GiB, load average {m['load_average_at_start']:.2f} at start; "
        f"median of {figures['repeat']} runs, each a fresh process.",
        table(["stack", "resources", "program", "floor", "program / floor", "floor + provider SDKs",
               "program / (floor + SDKs)", "deterministic"],
              [[stack, s["resources"], f"{s['program']['seconds']:.2f} s", f"{s['floor']['seconds']:.2f} s",
                f"{s['ratio']:.2f}", f"{s['floor_with_provider_sdks']['seconds']:.2f} s",
                f"**{s['ratio_to_floor_with_provider_sdks']:.2f}**", "yes" if figures["deterministic"][stack] else "NO"]
               for stack, s in stacks.items()]),
        table(["stack", "peak RSS program", "peak RSS floor", "peak RSS floor + SDKs", "sum of memory limits"],
              [[stack, f"{s['program']['peak_rss_mib']:.0f} MiB", f"{s['floor']['peak_rss_mib']:.0f} MiB",
                f"{s['floor_with_provider_sdks']['peak_rss_mib']:.0f} MiB", limits(stacks_in[stack]["footprint"])]
               for stack, s in stacks.items()]),
        table(["scale: dev + N targets, dashboards, alerts", "resources", "time", "peak RSS"],
              [[s["size"], s["resources"], f"{s['seconds']:.2f} s", f"{s['peak_rss_mib']:.0f} MiB"]
               for s in scale_["sizes"]]),
        table(["scale step", "size", "time", "per added item"],
              [[f"{g['from']} to {g['to']}", f"x{g['size_ratio']:g}", f"x{g['time_ratio']:.2f}",
                f"{g['ms_per_added_item']:.2f} ms"] for g in scale_["growth"]]),
        table(["blast radius", "change", "resources changed", "which"],
              [[stack, change, len(names), "<br>".join(names)]
               for stack, s in stacks_in.items()
               for change, names in (("threshold of " + ALERT, s["blast_radius"]["alert_threshold"]),
                                     ("one user dashboard", s["blast_radius"]["dashboard"]))]),
        table(["target", "met", "figure"],
              [[t["target"], "yes" if t["met"] else "NO", t["figure"]] for t in figures["targets"]]),
    ]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        child(*argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m components.tools.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write the figures (default: {OUT})")
    parser.add_argument("--sizes", default="10,100,1000", help="scale sizes, comma-separated (default: 10,100,1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, median taken (default: 3)")
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    if args.repeat < 1 or min(sizes) < 1:
        parser.error("--repeat and every size must be at least 1")

    # The program's modules compiled once, as pip compiles the SDKs' when it installs them: with
    # PYTHONDONTWRITEBYTECODE set, every child would otherwise compile them again, and only them.
    compileall.compile_dir(render.ROOT / "components", quiet=1)
    stacks = render.stack_names()
    figures = {"date": date.today().isoformat(), "machine": machine(), "repeat": args.repeat,
               "stacks": program_vs_floor(stacks, args.repeat), "scale": scaling(sizes, args.repeat),
               "in_process": in_process(stacks)}
    figures["deterministic"] = {
        stack: len(set(figures["stacks"][stack]["digests"]) | {figures["in_process"][stack]["digest"]}) == 1
        for stack in stacks
    }
    figures["targets"] = targets(figures)
    print(report(figures))
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
