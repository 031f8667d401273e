"""Names from files: one domain alphabet (profiles, pool indexes, calibration sources), folder names
matched whole (recipe name, output.name, output.pattern), recipes that are not UTF-8 or misshapen."""

from __future__ import annotations

import json

import pytest
import yaml
from hardening_helpers import one_line_error, snapshot

from emo_prune.calib.document import DOMAIN_ALPHABET, is_domain
from emo_prune.calib.sources import BUILTINS


@pytest.mark.parametrize(
    "name",
    [*BUILTINS, "arc_easy", "hendrycks_math", "my-data.v2", "calib", "C0DE", "x" * 64, "test_names0"],
)
def test_the_alphabet_holds_the_names_in_use(name: str) -> None:
    """Built-in corpora, lm-eval task names, file stems and pytest's folder names."""
    assert is_domain(name)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a/b", "a b", "x" * 65, "[link]", "café", "code\n", "\x1bc", "a\u202eb", "a=b", "a:b", 3, None],
)
def test_the_alphabet_refuses_the_rest(name) -> None:
    assert not is_domain(name)


def test_pool_index_pairs_with_a_bad_domain_are_refused_before_the_model_runs(cli, source_model, tmp_path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"context": "Q: 1 + 1?", "answer": " 2", "domain": "ma th"}) + "\n")
    before = snapshot(tmp_path)
    result = cli("pool-index", source_model, "--calib", pairs, "--out", tmp_path / "index.safetensors")
    one_line_error(result, "calibration error:", "pool index: domain name 'ma th'", DOMAIN_ALPHABET)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("spec", ["bad name=builtin:math:calib", "x\x1bc=builtin:math:calib", "..=builtin:math:calib"])
def test_a_bad_domain_prefix_is_named(cli, source_model, tmp_path, spec: str) -> None:
    before = snapshot(tmp_path)
    result = cli("profile", source_model, "--calib", spec, "--out", tmp_path / "p.safetensors")
    line = one_line_error(result, "calibration error:", "domain name", DOMAIN_ALPHABET)
    assert "\x1b" not in line
    assert snapshot(tmp_path) == before


def test_a_folder_name_becomes_a_domain_only_when_it_fits(cli, source_model, tmp_path) -> None:
    """A .txt file's domain is its folder's name: a folder with a space needs DOMAIN= (the message says so)."""
    folder = tmp_path / "my corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("Some calibration text about numbers: 1 + 2 = 3.\n")
    before = snapshot(tmp_path)
    result = cli("profile", source_model, "--calib", folder, "--out", tmp_path / "p.safetensors")
    one_line_error(result, "calibration error:", "'my corpus'", "DOMAIN=SOURCE")
    assert snapshot(tmp_path) == before


def _recipe(model, tmp_path, **changes) -> object:
    recipe = {
        "name": "r",
        "model": str(model),
        "calibration": {"sources": ["builtin:math:calib"], "max_tokens": 200},
        "budgets": [0.5],
    }
    recipe.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": "mini\n"}, "name: 'mini\\n' is not a folder name"),  # `$` used to match before the newline
        ({"name": "."}, "name: '.' is not a folder name"),
        ({"name": ".."}, "name: '..' is not a folder name"),
        ({"name": "a/b"}, "name: 'a/b' is not a folder name"),
        ({"name": ""}, "name: '' is not a folder name"),
        ({"name": "m\x1b[2J"}, "is not a folder name"),
        ({"output": {"name": "x\n"}}, "output.name: 'x\\n' is not a folder name"),
        ({"output": {"name": ".."}}, "output.name: '..' is not a folder name"),
        ({"output": {"pattern": "{name}-{budget}\n"}}, "the build folder 'r-50pct\\n' is not one plain folder name"),
        ({"output": {"pattern": "{name}/{budget}"}}, "the build folder 'r/50pct' is not one plain folder name"),
    ],
)
def test_names_that_become_folders_are_matched_whole(cli, source_model, tmp_path, changes, says) -> None:
    path = _recipe(source_model, tmp_path, **changes)
    before = snapshot(tmp_path)
    line = one_line_error(cli("run", path, "--out", tmp_path / "run"), "recipe error:", says)
    assert "\x1b" not in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("gates", "says"),
    [
        (
            {"task": "emo_ppl_math", "max_drop": 0.5},
            "gates: Input should be a valid tuple; write a list of gates, each a mapping like {task:",
        ),
        (["emo_ppl_math"], "gates.0: Input should be a valid dictionary or instance of Gate; write a list of gates"),
    ],
)
def test_a_misshapen_gate_says_what_a_gate_looks_like(cli, source_model, tmp_path, gates, says) -> None:
    path = _recipe(source_model, tmp_path, gates=gates, eval={"tasks": ["emo_ppl_math"]})
    before = snapshot(tmp_path)
    one_line_error(cli("run", path, "--out", tmp_path / "run"), "recipe error:", says, "max_drop")
    assert snapshot(tmp_path) == before


def test_a_recipe_that_is_not_utf8_is_named_with_the_offset(cli, source_model, tmp_path) -> None:
    path = _recipe(source_model, tmp_path)
    text = path.read_bytes()
    path.write_bytes(text[:10] + b"\xff\xfe" + text[10:])
    before = snapshot(tmp_path)
    one_line_error(cli("run", path, "--out", tmp_path / "run"), "recipe error:", str(path), "not UTF-8", "byte 0xff at offset 10")
    assert snapshot(tmp_path) == before


def test_a_profile_is_not_written_with_a_bad_domain(source_model, tmp_path) -> None:
    """The write side of the profile file: a domain that slipped past the sources is refused at save."""
    from emo_prune.errors import ProfileError
    from emo_prune.profile.runner import ProfileSettings, profile_to_file

    profile = profile_to_file(
        source_model, ["math=builtin:math:calib"], tmp_path / "p.safetensors", None, ProfileSettings(max_tokens=64, seq_len=32)
    )
    profile.domains["a/b"] = profile.domains.pop("math")
    before = snapshot(tmp_path)
    with pytest.raises(ProfileError, match=r"profile .*q\.safetensors: domain name 'a/b' is not allowed"):
        profile.save(tmp_path / "q.safetensors")
    assert snapshot(tmp_path) == before


def test_a_bad_domain_flag_is_named(cli, source_model, tmp_path) -> None:
    before = snapshot(tmp_path)
    result = cli("profile", source_model, "--calib", "builtin:math:calib", "--domain", "a b", "--out", tmp_path / "p.safetensors")
    one_line_error(result, "calibration error:", "--domain: domain name 'a b' is not allowed", DOMAIN_ALPHABET)
    assert snapshot(tmp_path) == before
