"""The README's promises: its first two commands, that every other command (its own and those of the
docs/ pages moved out of it) runs as written from an unrelated folder, and that its Python example runs
as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


# docs/ pages whose bash blocks run after the README's (they use the tour's builds), in this order
DOCS_WITH_COMMANDS = ("finetune.md", "pools.md", "recipes.md", "gguf.md")


def bash_blocks(text: str = README) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def command_blocks() -> list[str]:
    """The README's bash blocks, then those of the docs pages that moved out of it."""
    blocks = bash_blocks()
    for name in DOCS_WITH_COMMANDS:
        blocks += bash_blocks((ROOT / "docs" / name).read_text())
    return blocks


def test_every_docs_command_is_run():
    with_commands = {page.name for page in (ROOT / "docs").glob("*.md") if bash_blocks(page.read_text())}
    assert with_commands == set(DOCS_WITH_COMMANDS)


def test_readme_opens_with_the_two_commands():
    first, second = (block.strip() for block in bash_blocks()[:2])
    assert "pip install torch==2.13.0" in first and first.endswith("emo-prune run")
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    # .ci/run runs exactly the README's test command (clean venv, then install + test), then the checks
    assert second == "; ".join(ci_command[-3:-1]) and ci_command[-1] == ".ci/lint"


def test_python_example_runs(tmp_path, monkeypatch):
    (example,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    model = namespace["model"]
    assert model.config._experts_implementation == "emo_cpu"
    assert (tmp_path / "emo-small-code-25" / "config.json").exists()


@pytest.mark.slow
def test_every_readme_command_runs_from_a_temp_folder(tmp_path):
    """All bash blocks of the README and of the docs pages that hold commands, but the installs (.ci/run
    runs those; tests/test_wheel.py the wheel's), in order, in one empty folder, with `set -e`: the
    tour, then what uses its builds."""
    blocks = [b for b in command_blocks() if "pip install" not in b]
    assert blocks and "emo-prune inspect builtin:emo-small" in blocks[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for block in blocks:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{block}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert (tmp_path / "code25" / "config.json").is_file() and (tmp_path / "emo-small-code-12.5pct" / "config.json").is_file()
