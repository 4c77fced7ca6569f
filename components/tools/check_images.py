"""Check every rendered config file with the pinned image's own checker, on a Docker engine.

    python -m components.tools.render --out out/
    python -m components.tools.check_images out/             # check every stack rendered under out/
    python -m components.tools.check_images --dry-run out/   # print the docker commands, run none

Each check is `docker run --rm --network=none` of the image components/images.py pins for the
service, running that image's own check command (promtool, amtool, `loki -verify-config`,
`alloy validate`, ...). Every file the render gives the service is mounted read-only at its path
in the container, so the references between files (rule files, templates, /run/secrets/...)
resolve as they do when the service runs. Secrets are the render's placeholders: the checks read
the configuration, not the secret values. The checks need no network.

No shipped stack runs Promtail, which stays selectable (`log_shipper.type: promtail`), so a
variant of the dev stack with Promtail is rendered as well (into a scratch folder inside the
render folder, removed at the end) and the services no shipped stack has are checked from it.

The command of each check was taken from the upstream source at the pinned tag; docs/ci.md lists
them with the file and line they come from. Exit status: 0 when every check passed, 1 when one
failed, 2 when the render cannot be checked (nothing rendered, a config file with no check).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from components import images
from components.services import alertmanager, alloy, jaeger, loki, otel_collector, prometheus, promtail
from components.tools import render
from components import settings as settings_module
from components.workload import SECRETS_DIR

# A configuration no shipped stack renders, checked all the same: name, base stack, keys to change.
VARIANTS: tuple[tuple[str, str, dict], ...] = (("dev-promtail", "dev", {"log_shipper": {"type": "promtail"}}),)

# Services whose image has no command that checks a config file. Named here so that a config file
# given to one of them is a deliberate decision, not a check someone forgot.
UNCHECKED = {
    "grafana": "Grafana has no command that checks its configuration",
    # It reads its counters file only after connecting to DCGM, which needs an NVIDIA GPU.
    "gpu-exporter": "the DCGM exporter has no check-only mode; it reads its counters file after connecting to a GPU",
}

# One check can take a while: the first run pulls the image.
TIMEOUT_SECONDS = 900


class RenderError(Exception):
    """The render cannot be checked as it is."""


@dataclass(frozen=True)
class Tool:
    """An image's own check: what to run, and the container paths it reads (they must be rendered,
    or the check would quietly read the default file baked into the image)."""

    image: str
    entrypoint: Optional[str]
    args: tuple[str, ...]
    reads: tuple[str, ...]


def _prometheus(paths: list[str]) -> list[Tool]:
    config = f"{prometheus.CONFIG_DIR}/prometheus.yml"
    tools = [Tool(images.PROMETHEUS, "/bin/promtool", ("check", "config", config), (config,))]
    # `check config` follows rule_files globs, and a glob that matches nothing passes; naming the
    # rendered rule files makes sure each one is checked.
    rules = tuple(sorted(p for p in paths if p.startswith(prometheus.RULES_DIR + "/")))
    if rules:
        tools.append(Tool(images.PROMETHEUS, "/bin/promtool", ("check", "rules", *rules), rules))
    return tools


def _alertmanager(paths: list[str]) -> list[Tool]:
    config = f"{alertmanager.CONFIG_DIR}/alertmanager.yml"
    return [Tool(images.ALERTMANAGER, "/bin/amtool", ("check-config", config), (config,))]


def _loki(paths: list[str]) -> list[Tool]:
    return [Tool(images.LOKI, None, ("-verify-config", f"-config.file={loki.CONFIG}"), (loki.CONFIG,))]


def _promtail(paths: list[str]) -> list[Tool]:
    return [Tool(images.PROMTAIL, None, ("-check-syntax", f"-config.file={promtail.CONFIG}"), (promtail.CONFIG,))]


def _alloy(paths: list[str]) -> list[Tool]:
    return [Tool(images.ALLOY, None, ("validate", alloy.CONFIG), (alloy.CONFIG,))]


def _otel_collector(paths: list[str]) -> list[Tool]:
    config = otel_collector.CONFIG
    return [Tool(images.OTEL_COLLECTOR, None, ("validate", f"--config={config}"), (config,))]


def _jaeger(paths: list[str]) -> list[Tool]:
    return [Tool(images.JAEGER, None, ("validate", f"--config={jaeger.CONFIG}"), (jaeger.CONFIG,))]


# Service name (as the render names its folder) -> the checks of its rendered files.
CHECKS: dict[str, Callable[[list[str]], list[Tool]]] = {
    "prometheus": _prometheus,
    "alertmanager": _alertmanager,
    "loki": _loki,
    # Loki's roles in microservices mode (loki.mode): the same binary, each role's own file.
    **{f"{loki.NAME}-{role}": _loki for role in loki.ROLES},
    "promtail": _promtail,
    "alloy": _alloy,
    "otel-collector": _otel_collector,
    # The scaled-out collector's sampler tier (otel_collector.scale_out): the same binary and file.
    "otel-collector-sampler": _otel_collector,
    "jaeger": _jaeger,
    # Jaeger's collectors on a distributed store (jaeger.storage): the same binary and file.
    f"{jaeger.NAME}-{jaeger.COLLECTOR}": _jaeger,
}


@dataclass(frozen=True)
class Check:
    stack: str
    service: str
    tool: Tool
    # (file on this machine, path in the container), every file the render gives the service.
    mounts: tuple[tuple[str, str], ...]

    def command(self) -> list[str]:
        argv = ["docker", "run", "--rm", "--network=none"]
        argv += [f"--volume={host}:{container}:ro" for host, container in self.mounts]
        if self.tool.entrypoint:
            argv.append(f"--entrypoint={self.tool.entrypoint}")
        return [*argv, self.tool.image, *self.tool.args]


def rendered_files(stack_dir: Path) -> dict[str, dict[str, Path]]:
    """Per service: path in the container -> the rendered file (<stack>/files/<service>/<path>)."""
    files: dict[str, dict[str, Path]] = {}
    for service_dir in sorted(p for p in (stack_dir / "files").iterdir() if p.is_dir()):
        for path in sorted(p for p in service_dir.rglob("*") if p.is_file()):
            files.setdefault(service_dir.name, {})["/" + path.relative_to(service_dir).as_posix()] = path.resolve()
    return files


def is_config(path: str) -> bool:
    """A secret file holds a value, not configuration: there is nothing in it to check."""
    return not path.startswith(SECRETS_DIR + "/")


def plan_stack(stack_dir: Path) -> list[Check]:
    """The checks of one rendered stack, in service order."""
    checks = []
    for service, files in rendered_files(stack_dir).items():
        paths = sorted(files)
        if not any(is_config(p) for p in paths):
            continue
        if service in UNCHECKED:
            print(f"{stack_dir.name}/{service}: not checked: {UNCHECKED[service]}")
            continue
        if service not in CHECKS:
            raise RenderError(
                f"{stack_dir.name}/{service} has config files ({', '.join(p for p in paths if is_config(p))}) "
                "and no check: add one to CHECKS in components/tools/check_images.py, or name the service in UNCHECKED"
            )
        mounts = tuple((str(files[p]), p) for p in paths)
        for tool in CHECKS[service](paths):
            missing = [p for p in tool.reads if p not in files]
            if missing:
                raise RenderError(f"{stack_dir.name}/{service}: the check reads {', '.join(missing)}, which the render lacks")
            checks.append(Check(stack_dir.name, service, tool, mounts))
    return checks


def plan(render_dir: Path) -> list[Check]:
    """The checks of every stack rendered under render_dir (one folder per stack)."""
    stacks = sorted(p for p in render_dir.iterdir() if (p / "files").is_dir()) if render_dir.is_dir() else []
    if not stacks:
        raise RenderError(f"{render_dir}: no rendered stack (run `python -m components.tools.render --out {render_dir}`)")
    return [check for stack_dir in stacks for check in plan_stack(stack_dir)]


def render_variant(name: str, stack: str, changes: dict, out: Path) -> Path:
    """Render a stack file with some keys changed, in the layout of components.tools.render, files only."""
    config = render.stack_config(stack)
    for key, value in changes.items():
        config[key] = {**(config.get(key) or {}), **value}
    config.pop("secrets", None)
    secrets = {secret: settings_module.placeholder_secret(secret) for secret in sorted(settings_module.required_secrets(stack, config))}
    run = render.run_program(stack, config, secrets)
    stack_dir = out / name
    for service in sorted(run.outputs.get("services", [])):
        for path, content in render.container_files(run, service).items():
            target = stack_dir / "files" / service / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content if is_config(path) else render.SECRET + "\n")
    return stack_dir


def run_checks(checks: list[Check]) -> list[Check]:
    """Run each check; return the ones that failed."""
    failed = []
    for check in checks:
        command = check.command()
        print(f"== {check.stack}/{check.service}: {shlex.join(command)}", flush=True)
        try:
            result = subprocess.run(command, timeout=TIMEOUT_SECONDS)
            ok = result.returncode == 0
        except subprocess.TimeoutExpired:
            print(f"timed out after {TIMEOUT_SECONDS}s")
            ok = False
        if not ok:
            failed.append(check)
    return failed


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.tools.check_images", description=__doc__.split("\n\n")[0])
    parser.add_argument("render_dir", type=Path, help="the output of `python -m components.tools.render --out DIR`")
    parser.add_argument("--dry-run", action="store_true", help="print the docker commands and run none")
    args = parser.parse_args(argv)

    try:
        checks = plan(args.render_dir)
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # The variants go beside the stacks (a Docker engine that sees the render sees them too), in a
    # folder removed at the end. Only the services no rendered stack has are checked again.
    with tempfile.TemporaryDirectory(prefix=".variants-", dir=args.render_dir) as scratch:
        # Readable like the rest of the render (mkdtemp makes it 0700): images run as other users.
        Path(scratch).chmod(0o755)
        checked = {check.service for check in checks}
        try:
            for name, stack, changes in VARIANTS:
                variant = plan_stack(render_variant(name, stack, changes, Path(scratch)))
                checks += [check for check in variant if check.service not in checked]
        except RenderError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if args.dry_run:
            for check in checks:
                print(shlex.join(check.command()))
            return 0
        if shutil.which("docker") is None:
            print("error: docker is not on PATH; the checks run the pinned images on a Docker engine", file=sys.stderr)
            return 2
        failed = run_checks(checks)
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed")
    for check in failed:
        print(f"FAILED {check.stack}/{check.service}: {shlex.join(check.tool.args)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
