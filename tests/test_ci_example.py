"""examples/ci/prune-edge.yml works from a USER's repository (issue 25): it validates against GitHub's
workflow schema, zizmor finds nothing at medium or above, and its `run:` steps, executed in order with
bash in a temporary repository that holds only recipes, install emo-prune as a pipeline would (from a
package index: here a local one holding this checkout's wheel), run the recipes, and leave the
artifacts and the step summary that the upload steps would publish.

check-jsonschema and zizmor are in the `dev` extra: these tests do not skip when they are missing.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from emo_prune.version import __version__
from tests.pipeline.pipeline_recipes import fast_recipe
from tests.test_wheel import _run, wheel  # noqa: F401 (the module-scoped wheel fixture, built once)

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "examples" / "ci" / "prune-edge.yml"
TOOLS = Path(sys.executable).parent


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_workflow_validates_against_githubs_schema():
    result = subprocess.run(
        [TOOLS / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", WORKFLOW], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_at_medium_or_above():
    result = subprocess.run([TOOLS / "zizmor", "--offline", "--min-severity", "medium", WORKFLOW], capture_output=True, text=True)
    assert result.returncode == 0 and "No findings" in result.stdout, result.stdout + result.stderr


def test_the_workflow_installs_the_pinned_release_not_the_users_project():
    workflow = _workflow()
    assert workflow["env"]["EMO_PRUNE_VERSION"] == __version__  # bump the pin with each release
    commands = "\n".join(step.get("run", "") for step in workflow["jobs"]["prune"]["steps"])
    assert "pip install -e" not in commands and "emo_prune/models/builtin.py" not in WORKFLOW.read_text()
    assert "${{" not in commands  # inputs reach scripts through env:, never expanded into them


# ---- the run: steps, in a user's repository --------------------------------------------------------
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def _evaluate(text: str, context: dict[str, str]) -> str:
    """The few expressions the workflow uses (github.workspace, inputs.X, runner.os, env.X); any other
    one fails the test, so the workflow stays simple enough to run here."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in context, f"expression {name!r} is not one this test knows"
        return context[name]

    return EXPRESSION.sub(value, str(text))


@pytest.fixture(scope="module")
def venv_with_pip(tmp_path_factory) -> Path:
    """A fresh venv with pip that sees this environment's packages (torch, transformers, ...) but not the
    editable emo_prune: what `setup-python` plus the cache give a runner, without a download."""
    env_dir = tmp_path_factory.mktemp("ci-venv") / "v"
    _run([sys.executable, "-m", "venv", str(env_dir)])
    # the venv's own old setuptools would hide this environment's (torch requires a newer one)
    _run([str(env_dir / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", "setuptools"])
    (site,) = env_dir.glob("lib/python*/site-packages")
    # this environment's packages less emo-prune's own (its editable install would count as "already
    # satisfied" and the workflow's install would install nothing): a folder of links to the rest
    # (inside the venv's prefix: dill pickles classes of modules outside sys.prefix by value, and fails)
    seen = env_dir / "parent-site-packages"
    seen.mkdir()
    for parent in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]):
        for entry in Path(parent).iterdir():
            hidden = entry.name.lower().replace("-", "_").startswith(("emo_prune", "__editable__", "_emo_prune"))
            if not hidden and not (seen / entry.name).exists():
                (seen / entry.name).symlink_to(entry)
    (site / "_parent_env.pth").write_text(f"{seen}\n")
    return env_dir


def test_the_run_steps_work_in_a_repository_of_recipes(wheel, venv_with_pip, tmp_path):  # noqa: F811
    user = tmp_path / "user-repo"
    (user / "recipes").mkdir(parents=True)
    recipe = fast_recipe(Path("builtin:tiny-emo"), name="tiny", budgets=[0.25])
    (user / "recipes" / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    index = tmp_path / "index"  # the package index: this checkout's wheel, as a release would be
    index.mkdir()
    shutil.copy(wheel, index)
    summary, output = tmp_path / "summary.md", tmp_path / "output"

    workflow = _workflow()
    job = workflow["jobs"]["prune"]
    context = {"github.workspace": str(user), "inputs.recipe": "", "runner.os": "Linux"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {
        "PATH": f"{venv_with_pip / 'bin'}{os.pathsep}{env['PATH']}",
        "GITHUB_WORKSPACE": str(user),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
        "RUNNER_TEMP": str(tmp_path),
        "PIP_NO_INDEX": "1",  # no network: the "index" is the folder of the wheel
        "PIP_FIND_LINKS": str(index),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONPATH": "",
    }
    for level in (workflow.get("env", {}), job.get("env", {})):
        for key, raw in level.items():
            env[key] = _evaluate(raw, context | {f"env.{k}": v for k, v in env.items()})

    ran, failed, uploads = [], False, []
    for step in job["steps"]:
        condition = str(step.get("if", "success()"))
        if failed and "always()" not in condition:
            continue
        if "run" in step:
            script = _evaluate(step["run"], context)
            result = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", script], cwd=user, env=env, capture_output=True, text=True
            )
            ran.append(step.get("name", script.splitlines()[0]))
            failed = failed or result.returncode != 0
            assert result.returncode == 0, (
                f"step {ran[-1]!r}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        elif step["uses"].startswith("actions/upload-artifact"):
            uploads.append(step["with"]["path"])

    assert ran == ["Install emo-prune", "Run the recipes (exit 1 when a quality gate fails)", "Summary"]
    assert (venv_with_pip / "bin" / "emo-prune").is_file()  # installed from the index, not the checkout
    report = user / "runs" / "tiny" / "report.md"
    assert report.is_file() and report.read_text().strip() in summary.read_text()
    # every path the upload steps name finds its files (runs/*/builds/ holds the build)
    for paths in uploads:
        for pattern in str(paths).split():
            assert glob.glob(str(user / pattern)), pattern
    assert (user / "runs" / "tiny" / "builds" / "tiny-math-25pct" / "config.json").is_file()
