"""The built wheel works outside the source tree: every data file is in it, and the commands run.

Builds the wheel offline from a copy of the checkout, installs it with no dependencies into a fresh
venv that sees this environment's site-packages (torch, transformers, ... are reused, never
downloaded) but not the editable checkout, and runs the commands a new user types first from an
unrelated folder. Deselect with `-m "not wheel"`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "runs", "out", "*.egg-info", "__pycache__", ".pytest_cache"
)

pytestmark = [pytest.mark.wheel, pytest.mark.slow]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=IGNORED)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(root / "dist"),
            str(source),
        ]
    )
    (built,) = (root / "dist").glob("emo_prune-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    (site,) = env_dir.glob("lib/python*/site-packages")
    # a plain path entry: the parent's .pth files (the editable emo_prune among them) are not processed
    parents = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_parent_env.pth").write_text("\n".join(parents) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env_dir / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )
    return env_dir


def test_wheel_carries_every_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"emo_prune/recipes/{p.relative_to(REPO / 'recipes').as_posix()}"
        for p in (REPO / "recipes").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    for folder in ("emo_prune/arch/families", "emo_prune/assets/models"):
        expected |= {p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*") if p.is_file()}
    assert expected - names == set()
    assert not any(n.startswith("kernels/") for n in names) and "emo_prune_kernels/moe.py" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines() if line.startswith("Requires-Dist: triton")
    ]
    assert requires and all("extra ==" in line for line in requires), requires


def test_installed_wheel_runs_from_an_unrelated_folder(venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EMO_PRUNE_RECIPES")}
    env.update(HF_HUB_OFFLINE="1", EMO_PRUNE_CACHE=str(tmp_path / "cache"))
    exe = str(venv / "bin" / "emo-prune")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return _run([exe, *args], cwd=tmp_path, env=env)

    where = _run(
        [str(venv / "bin" / "python"), "-c", "import emo_prune.eval as e; print(e.recipes_dir())"], cwd=tmp_path, env=env
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    facts = json.loads(cli("--json", "inspect", "builtin:emo-small").stdout)
    assert facts["family"] == "emo" and facts["num_layers"] == 4
    report = json.loads(cli("--json", "run").stdout)
    assert report["passed"] and (tmp_path / "runs" / "quickstart" / "report.md").is_file()
    build = tmp_path / "runs" / "quickstart" / "builds" / "quickstart-code-25pct"
    scores = json.loads(cli("--json", "eval", str(build), "--tasks", "emo_offline", "--limit", "2", "--out", "e.json").stdout)
    assert set(scores["model"]["tasks"]) >= {"emo_ppl_code", "emo_math_mc"}
