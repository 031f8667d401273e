"""The README's promises: its first two commands, and that its Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_commands():
    first, second = (block.strip() for block in bash_blocks()[:2])
    assert "pip install torch==2.13.0" in first and first.endswith("emo-prune run")
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    # .ci/run runs exactly the README's test command (its last two lines: clean venv, then install + test)
    assert second == "; ".join(ci_command[-2:])


def test_python_example_runs(tmp_path, monkeypatch):
    (example,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    model = namespace["model"]
    assert model.config._experts_implementation == "emo_cpu"
    assert (tmp_path / "emo-small-code-25" / "config.json").exists()
