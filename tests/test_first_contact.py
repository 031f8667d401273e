"""Commands as a new user types them, and output a user (or a CI log) can read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from emo_prune.errors import PlanError
from emo_prune.select.keep import Keep


@pytest.fixture(scope="module")
def code_plan(tmp_path_factory) -> Path:
    """A 25% code plan of the bundled emo-small, from a small profile."""
    from emo_prune.models.builtin import resolve_model
    from emo_prune.profile import ProfileSettings, profile_to_file
    from emo_prune.select import SelectOptions, make_plan

    folder = tmp_path_factory.mktemp("first-contact")
    model = resolve_model("builtin:emo-small")
    profile_to_file(model, ["builtin:code:calib"], folder / "p.safetensors", settings=ProfileSettings(max_tokens=2000))
    plan = make_plan(model, SelectOptions(keep="0.25", domains=("code",)), profile_path=folder / "p.safetensors")
    plan.save(folder / "code25.json")
    return folder / "code25.json"


# ---- --keep --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "fraction", "count"),
    [("0.25", 0.25, None), ("1.0", 1.0, None), ("8", None, 8), ("2", None, 2), ("1 expert", None, 1), ("8 experts", None, 8)],
)
def test_keep_rules(text, fraction, count):
    keep = Keep.parse(text)
    assert (keep.fraction, keep.count) == (fraction, count)


@pytest.mark.parametrize(
    ("text", "says"), [("1", "--experts 1"), ("2.5", "(0, 1]"), ("0", "at least 1 expert"), ("x", "neither")]
)
def test_keep_mistakes_name_the_fix(text, says):
    with pytest.raises(PlanError, match=None) as error:
        Keep.parse(text)
    assert says in str(error.value)


def test_keep_1_fails_before_any_work_and_experts_1_is_a_count(cli, tmp_path):
    result = cli("extract", "builtin:emo-small", "--keep", "1", "--domain", "code", "--out", tmp_path / "b")
    assert result.exit_code == 1 and "write --keep 1.0 to keep every expert, or --experts 1" in result.stderr
    assert "profil" not in result.stderr  # refused before profiling
    result = cli("select", "builtin:emo-small", "--experts", "1", "--method", "random", "--out", tmp_path / "p.json")
    assert result.exit_code == 1 and "leaves 1 expert per layer, fewer than top-k 4" in result.stderr


# ---- MODEL arguments and defaults ----------------------------------------------------------------
def test_extract_in_one_step_profiles_the_domain_first(cli, tmp_path, monkeypatch):
    import emo_prune.cli.extract_cmd as extract_cmd

    monkeypatch.setattr(extract_cmd, "DEFAULT_MAX_TOKENS", 2000)  # the test's own budget; the default is larger
    monkeypatch.chdir(tmp_path)
    result = cli("extract", "builtin:emo-small", "--keep", "0.125", "--domain", "code")
    assert result.exit_code == 0, result.output
    assert "no --profile given: profiling on builtin:code:calib first" in result.stderr
    assert "writing the build to emo-small-code-12.5pct" in result.stderr
    manifest = json.loads((tmp_path / "emo-small-code-12.5pct" / "emo_prune.json").read_text())
    assert manifest["domains"] == ["code"] and manifest["keep"] == "0.125"


def test_profile_with_only_a_domain(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("profile", "builtin:emo-small", "--domain", "code", "--max-tokens", "2000")
    assert result.exit_code == 0, result.output
    assert "calibration text: builtin:code:calib" in result.stderr
    assert (tmp_path / "emo-small-code.profile.safetensors").is_file() and "emo-small-code.profile.safetensors" in result.stdout
    # a profile of one domain needs no --domain to select from
    select = cli(
        "select", "builtin:emo-small", "--profile", "emo-small-code.profile.safetensors", "--keep", "0.25", "--out", "p.json"
    )
    assert select.exit_code == 0, select.output
    assert json.loads((tmp_path / "p.json").read_text())["domains"] == ["code"]
    # profiles get the permissions of every other output
    assert (tmp_path / "emo-small-code.profile.safetensors").stat().st_mode == (tmp_path / "p.json").stat().st_mode


def test_builtin_corpus_without_split_warns(tmp_path):
    from emo_prune import events
    from emo_prune.calib import load_documents

    class Recorder(events.LoggingListener):
        def __init__(self):
            self.warnings = []

        def warn(self, message):
            self.warnings.append(message)

    recorder = Recorder()
    previous = events.listen(recorder)  # the library reports through emo_prune.events, whoever listens
    try:
        load_documents(["builtin:math"])
        load_documents(["builtin:math:calib"])
    finally:
        events.listen(previous)
    assert " ".join(recorder.warnings).count("includes the held-out text") == 1


def test_library_reports_reach_the_cli_console(cli):
    from emo_prune import events
    from emo_prune.cli.console import out

    assert cli("--version").exit_code == 0  # the CLI is loaded: its console listens
    with out.err_console.capture() as captured:
        events.warn("a library warning")
    assert "a library warning" in captured.get()


def test_eval_of_a_build_defaults_from_its_manifest(cli, code_plan, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("extract", "builtin:emo-small", "--plan", code_plan, "--out", "code25").exit_code == 0
    result = cli("eval", "code25", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "tasks: emo_ppl_code (the offline tasks of the build's domains" in result.stderr
    assert "baseline: builtin:emo-small (the build's source" in result.stderr
    card = (tmp_path / "code25" / "README.md").read_text()
    assert "Expert subset of `builtin:emo-small`" in card and "pip install emo-prune" in card and "import emo_prune" in card
    assert not re.search(r"[`\s(]/[A-Za-z]", card), "the model card names an absolute path"
    data = json.loads((tmp_path / "code25-eval.json").read_text())
    assert set(data["model"]["tasks"]) == {"emo_ppl_code"} and data["baseline"] is not None


# ---- output ----------------------------------------------------------------------------------------
def test_quiet_hides_progress_never_results(cli, code_plan, tmp_path):
    for args in (["--quiet", "extract"], ["extract"]):
        quiet = args[0] == "--quiet"
        extra = ["--quiet"] if not quiet else []  # the global flag before and after the command name
        result = cli(*args, "builtin:emo-small", "--plan", code_plan, "--out", tmp_path / f"b{len(args)}", *extra)
        assert result.exit_code == 0, result.output
        assert "experts per MoE layer" in result.stdout  # the result
        assert result.stderr == ""  # no progress, no notes


def test_progress_off_a_terminal_is_lines_with_elapsed_time(cli, code_plan, tmp_path, monkeypatch):
    from emo_prune.cli.console import LineProgress

    quick = cli("extract", "builtin:emo-small", "--plan", code_plan, "--out", tmp_path / "a")
    assert quick.exit_code == 0 and quick.stderr == ""  # a step shorter than LineProgress.DELAY prints nothing
    monkeypatch.setattr(LineProgress, "DELAY", 0.0)  # as if every step were long
    result = cli("extract", "builtin:emo-small", "--plan", code_plan, "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("extracting: ") and lines[-1].startswith("extracting: finished (")
    assert any(line.startswith("extracting: 100% (") for line in lines) and all(line.endswith(")") for line in lines)


def test_tables_fit_80_columns_without_truncated_headers(cli, tiny_zoo, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("inspect", tiny_zoo["emo"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout and max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "layer" in result.stdout and "routed" in result.stdout


def test_usage_errors_are_one_line(cli):
    result = cli("inspect")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["usage error: Missing argument 'MODEL' (see `emo-prune inspect --help`)"]


def test_profile_merge_is_a_command_and_the_old_flag_still_works(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("profile", "builtin:emo-small", "--domain", "math", "--max-tokens", "500", "--out", "a.safetensors").exit_code == 0
    merged = cli("--json", "profile", "merge", "a.safetensors", "a.safetensors", "--out", "b.safetensors")
    assert merged.exit_code == 0, merged.output
    old = cli("--json", "profile", "--merge", "a.safetensors", "a.safetensors", "--out", "c.safetensors")
    assert old.exit_code == 0, old.output
    tokens = [json.loads(r.stdout)["domains"]["math"]["tokens"] for r in (merged, old)]
    assert tokens[0] == tokens[1] > 0


COMMANDS = [
    "inspect",
    "profile",
    "select",
    "extract",
    "verify",
    "finetune",
    "merge-back",
    "eval",
    "generate",
    "export",
    "run",
    "bench",
]


@pytest.mark.parametrize("command", [*COMMANDS, "profile merge", "profile show"])
def test_help_has_a_real_example_and_no_type_placeholders(cli, command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = cli(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    assert f"Example: emo-prune {command.split()[0]}" in result.output
    for placeholder in ("<path>", "<bool>", "<str>", "<int>", "list[", " TEXT ", " INTEGER ", " PATH "):
        assert placeholder not in result.output, (command, placeholder)


def test_help_lists_the_pipeline_in_order(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    listed = [
        line.split()[1] for line in cli("--help").output.splitlines() if line.startswith("│ ") and line.split()[1] in COMMANDS
    ]
    assert listed == COMMANDS
