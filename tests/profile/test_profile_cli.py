"""`emo-prune profile` / `profile --merge` / `profile show`: results, --json, and refused inputs."""

from __future__ import annotations

import json

import pytest
import torch

from emo_prune.errors import ProfileError
from emo_prune.io import Checkpoint, model_identity
from emo_prune.profile import Profile


@pytest.fixture
def calib(tmp_path, calib_docs):
    path = tmp_path / "calib.jsonl"
    path.write_text("".join(json.dumps({"text": d.text, "domain": d.domain}) + "\n" for d in calib_docs))
    return path


COMMON = ("--seq-len", 16, "--batch-size", 3, "--device", "cpu", "--dtype", "float32")


def test_profile_json_report_show_and_plot(cli, tiny_models, calib, tmp_path):
    model = tiny_models("emo")
    target = tmp_path / "p.safetensors"
    result = cli("profile", model, "--calib", calib, "--out", target, *COMMON, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    profile = Profile.load(target)
    assert data["digest"] == profile.digest() and set(data["domains"]) == {"code", "math"}
    code = data["domains"]["code"]
    assert code["tokens"] == profile.domains["code"].num_tokens and code["documents"] == 5
    assert code["coverage"]["0.25"]["per_layer"][1] is None  # the dense layer
    assert data["overlap"][0]["domains"] == ["code", "math"]
    profile.check_model(model_identity(Checkpoint.open(model)))
    assert profile.settings["seq_len"] == 16 and profile.calibration[0]["source"] == str(calib)

    human = cli("profile", "show", target, "--plot", tmp_path / "heat.png")
    assert human.exit_code == 0, human.output
    assert "mass kept" in human.output and "overlap" in human.output
    assert (tmp_path / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = json.loads(cli("profile", "show", target, "--json").output)
    assert shown["domains"] == data["domains"]


def test_merge_sums_disjoint_profiles(cli, tiny_models, calib_docs, tmp_path):
    model = tiny_models("olmoe")
    halves = []
    for i, docs in enumerate((calib_docs[::2], calib_docs[1::2])):
        path = tmp_path / f"half{i}.jsonl"
        path.write_text("".join(json.dumps({"text": d.text, "domain": d.domain}) + "\n" for d in docs))
        halves.append(path)
    whole_calib = tmp_path / "whole.jsonl"
    whole_calib.write_text("".join(halves[0].read_text() + halves[1].read_text()))
    outs = []
    for i, path in enumerate([*halves, whole_calib]):
        outs.append(tmp_path / f"p{i}.safetensors")
        assert cli("profile", model, "--calib", path, "--out", outs[-1], *COMMON).exit_code == 0
    merged = tmp_path / "merged.safetensors"
    result = cli("profile", "--merge", outs[0], outs[1], "--out", merged)
    assert result.exit_code == 0, result.output
    a, b = Profile.load(merged), Profile.load(outs[2])
    for name in b.domains:
        assert (a.domains[name].num_tokens, a.domains[name].num_documents) == (
            b.domains[name].num_tokens,
            b.domains[name].num_documents,
        )
        for stat, tensor in b.domains[name].expert.items():
            # counts exact; sums of fp32 values differ in the last bits (other batch composition)
            exact = stat in ("tokens", "pool_25", "pool_12")
            torch.testing.assert_close(a.domains[name].expert[stat], tensor, rtol=0 if exact else 1e-6, atol=0 if exact else 1e-6)
    assert len(a.calibration) == 2 and a.settings["merged_from"] == 2


def test_refused_inputs_write_nothing(cli, tiny_models, calib, tmp_path):
    model = tiny_models("emo")
    target = tmp_path / "p.safetensors"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{not json\n')
    cases = [
        (("profile", model, "--calib", bad, "--out", target), "bad.jsonl:2 is not JSON Lines"),
        (("profile", model, "--calib", calib, "--domain", "law", "--out", target), "domain 'law' has no documents"),
        (("profile", model, "--out", target), "no calibration text and no domain given"),
        (("profile", tmp_path / "nope", "--calib", calib, "--out", target), "model folder not found"),
        (("profile", model, "--calib", calib, "--out", target, "--batch-size", 0), "--batch-size must be positive"),
        (("profile", model, "--calib", calib, "--out", tmp_path), "is a folder"),
        (("profile", "show", calib, "--top", 3), "not a readable profile"),
        (("profile", "--merge", tmp_path / "none.safetensors", "--out", target), "profile not found"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "calib.jsonl"]  # no output, no temp file

    assert cli("profile", model, "--calib", calib, "--out", target, *COMMON).exit_code == 0
    before = target.read_bytes()
    again = cli("profile", model, "--calib", calib, "--out", target, *COMMON)
    assert again.exit_code == 1 and "--overwrite" in again.output and target.read_bytes() == before


def test_model_mismatch_is_refused(cli, tiny_models, calib, tmp_path):
    emo, olmoe = tiny_models("emo"), tiny_models("olmoe")
    paths = [tmp_path / "emo.safetensors", tmp_path / "olmoe.safetensors"]
    for model, path in zip((emo, olmoe), paths, strict=True):
        assert cli("profile", model, "--calib", calib, "--out", path, *COMMON).exit_code == 0
    with pytest.raises(ProfileError, match="not from"):
        Profile.load(paths[0]).check_model(model_identity(Checkpoint.open(olmoe)))
    result = cli("profile", "--merge", *paths, "--out", tmp_path / "m.safetensors")
    assert result.exit_code == 1 and "different models" in result.output
    assert not (tmp_path / "m.safetensors").exists()
