"""The CLI shell and `emo-prune inspect` on every family."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from emo_prune.testing import FAMILIES
from emo_prune.version import __version__

REPO = Path(__file__).resolve().parents[2]


def test_version_and_help(cli):
    assert cli("--version").output.strip() == f"emo-prune {__version__}"
    result = cli("--help")
    assert result.exit_code == 0 and "inspect" in result.output


@pytest.mark.parametrize("family", FAMILIES)
def test_inspect_json_counts(cli, tiny_zoo, family):
    result = cli("--json", "inspect", tiny_zoo[family])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    model = AutoModelForCausalLM.from_pretrained(tiny_zoo[family])
    assert facts["family"] == family and facts["num_layers"] == 2 and facts["top_k"] == 2
    assert facts["total_params"] == sum(p.numel() for p in model.parameters())
    expert_params = 3 * 64 * 32  # gate + up [32, 64] and down [64, 32]
    shared = 1 if family == "emo" else 0
    assert [lay["experts"] for lay in facts["layers"]] == [8, 8]
    assert [lay["shared"] for lay in facts["layers"]] == [shared, shared]
    assert facts["expert_params"] == 2 * 8 * expert_params
    assert facts["active_params"] == facts["total_params"] - 2 * (8 - 2) * expert_params
    assert facts["layers"][0]["expert_bytes"] == expert_params * 4 and facts["dtype"] == "F32"


def test_inspect_human_and_trailing_json_flag(cli, tiny_zoo):
    human = cli("inspect", tiny_zoo["emo"])
    assert human.exit_code == 0 and "emo (model_type emo)" in human.output and "experts per layer" in human.output
    trailing = cli("inspect", tiny_zoo["mixtral"], "--json")
    assert json.loads(trailing.stdout)["family"] == "mixtral"


def test_errors_are_one_line_and_exit_1(cli, tmp_path):
    result = cli("inspect", tmp_path / "missing")
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"checkpoint error: model folder not found: {tmp_path / 'missing'} (a model is a folder")
    as_json = cli("--json", "inspect", tmp_path / "missing")
    assert json.loads(as_json.stdout)["error"]["kind"] == "checkpoint error"


def test_debug_shows_the_traceback(cli, tmp_path):
    result = cli("--debug", "inspect", tmp_path / "missing")
    assert result.exit_code == 1 and type(result.exception).__name__ == "CheckpointError"


def test_console_script_runs():
    result = subprocess.run(["emo-prune", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"emo-prune {__version__}"


def test_kernels_folder_is_not_the_pypi_kernels_package():
    """transformers probes for a package named `kernels`; our folder must not pose as it.

    transformers 5.25 depends on the PyPI `kernels` package: where it is installed, transformers must
    find that one (a regular package wins over our folder, a namespace portion at most); where it is
    not, transformers must see none."""
    import importlib.metadata

    code = (
        "import importlib.util, transformers.utils as u, emo_prune; s = importlib.util.find_spec('kernels'); "
        "print(u.is_kernels_available(), s.origin if s and s.origin else None)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    available, origin = result.stdout.strip().splitlines()[-1].split(" ", 1)
    try:
        importlib.metadata.distribution("kernels")
    except importlib.metadata.PackageNotFoundError:
        assert available == "False"
    else:
        assert available == "True" and origin != "None" and not origin.startswith(str(REPO / "kernels"))
    assert not (REPO / "kernels" / "__init__.py").exists()


def test_help_paragraphs_are_single_lines_so_they_wrap_at_any_width():
    """Typer's rich help keeps a docstring's line breaks: each source line would wrap on its own at 80 columns."""
    import click
    import typer

    from emo_prune.cli import app

    def commands(group):
        for cmd in group.commands.values():
            yield from commands(cmd) if isinstance(cmd, click.Group) else [cmd]

    helps = [cmd.help for cmd in commands(typer.main.get_command(app)) if cmd.help]
    assert len(helps) >= 10
    for text in helps:
        assert all("\n" not in paragraph for paragraph in text.split("\n\n")), text
