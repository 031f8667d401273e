"""The CLI starts without torch or transformers, and `import emo_prune` still registers EMO on time.

Each check runs in a fresh interpreter and looks at `sys.modules` when it exits (timings come from
examples/benchmarks/startup_benchmark.py, not from tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "lm_eval", "matplotlib")
PROBE = """
import atexit, json, sys
atexit.register(lambda: print("\\nLOADED " + json.dumps([m for m in {heavy!r} if m in sys.modules])))
from emo_prune.cli import main
sys.argv = ["emo-prune", *{args!r}]
main()
"""


def loaded_by(args: list[str], cwd: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    code = PROBE.format(heavy=HEAVY, args=[str(a) for a in args])
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    line = result.stdout.rstrip().splitlines()[-1]
    assert line.startswith("LOADED "), result.stdout + result.stderr
    return json.loads(line[len("LOADED ") :]), result


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> tuple[Path, Path]:
    from emo_prune.models.builtin import resolve_model
    from emo_prune.profile import ProfileSettings, profile_to_file
    from emo_prune.select import SelectOptions, make_plan

    folder = tmp_path_factory.mktemp("startup")
    model = resolve_model("builtin:emo-small")
    profile_to_file(model, ["builtin:code:calib"], folder / "p.safetensors", settings=ProfileSettings(max_tokens=2000))
    make_plan(model, SelectOptions(keep="0.25", domains=("code",)), profile_path=folder / "p.safetensors").save(
        folder / "plan.json"
    )
    return folder / "p.safetensors", folder / "plan.json"


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["profile", "--help"],
        ["inspect", "builtin:emo-small"],
        ["--json", "inspect", "builtin:emo-small"],
    ],
)
def test_light_commands_import_neither_torch_nor_transformers(args, tmp_path):
    loaded, result = loaded_by(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert loaded == [], f"emo-prune {' '.join(args)} imported {loaded}"


def test_select_from_a_profile_imports_neither(plan_file, tmp_path):
    profile, plan = plan_file
    args = [
        "select",
        "builtin:emo-small",
        "--profile",
        profile,
        "--domain",
        "code",
        "--keep",
        "0.25",
        "--out",
        tmp_path / "p.json",
    ]
    loaded, result = loaded_by(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        json.loads((tmp_path / "p.json").read_text())["experts_kept_per_layer"]
        == json.loads(plan.read_text())["experts_kept_per_layer"]
    )
    assert loaded == [], f"select --method mass imported {loaded}"


def test_extract_with_a_plan_imports_neither(plan_file, tmp_path):
    _, plan = plan_file
    loaded, result = loaded_by(["extract", "builtin:emo-small", "--plan", plan, "--out", tmp_path / "build"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "build" / "config.json").is_file()
    assert loaded == [], loaded


def test_import_emo_prune_is_cheap_and_registers_on_transformers_import(tmp_path):
    code = """
import sys
import emo_prune
assert not any(m in sys.modules for m in ("torch", "transformers")), "import emo_prune pulled torch/transformers"
from emo_prune.models.builtin import resolve_model
model_dir = resolve_model("builtin:emo-small")
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.integrations.moe import ExpertsInterface
model = AutoModelForCausalLM.from_pretrained(model_dir, experts_implementation="emo_cpu")
print(type(model).__name__, AutoConfig.for_model("emo").model_type, "emo_cpu" in ExpertsInterface._global_mapping)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["EmoForCausalLM", "emo", "True"]


def test_registration_also_when_transformers_came_first(tmp_path):
    code = "import transformers, emo_prune; from transformers import AutoConfig; print(AutoConfig.for_model('emo').model_type)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "emo"


def test_library_modules_that_import_transformers_first_still_register(tmp_path):
    """No import cycle: the EMO model package itself is what imports transformers first here."""
    code = "import emo_prune.models.emo.modeling_emo as m, emo_prune.runtime; from transformers import AutoConfig; print(AutoConfig.for_model('emo').model_type)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "emo"
