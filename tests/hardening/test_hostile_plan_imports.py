"""`plan import` of hostile files: wrong types, ids out of range, duplicates, non-finite numbers, deep nesting,
binary and huge files. Each is refused with one line naming the file and the field, exit 1, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emo_prune.export.plans.files import MAX_IMPORT_BYTES

E = 8  # the hardening model: 2 layers x 8 experts (1 shared), top-2

STATS_LAYER = {
    "total_tokens": 10,
    "activation_counts": [1] * E,
    "activation_frequency": [0.1] * E,
    "avg_gate_weight": [0.5] * E,
    "ean_mean": [1.0] * E,
    "reap": [0.5] * E,
    "never_activated": [],
}


def jsonl(*lines) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def full(layer: int) -> dict:
    return {str(layer): list(range(E))}


# (file name, content, --format or None, --keep or None, what the one line must say); one comment per case
CASES = [
    # vLLM: the list is not a list
    ("a.json", {"version": 1, "pruned_experts": "0,1"}, None, None, "'pruned_experts' must be a list"),
    # vLLM: a pair of the wrong length / a bool where an id goes / a float id
    ("b.json", {"version": 1, "pruned_experts": [[0, 1, 2]]}, None, None, "pruned_experts[0] must be a [layer, expert] pair"),
    ("c.json", {"version": 1, "pruned_experts": [[0, True]]}, None, None, "must be an integer, got true"),
    ("d.json", {"version": 1, "pruned_experts": [[0, 1.5]]}, None, None, "must be an integer, got 1.5"),
    # vLLM: expert and layer ids out of range, negative ids
    ("e.json", {"version": 1, "pruned_experts": [[0, 99]]}, None, None, "expert 99 is out of range 0..7"),
    ("f.json", {"version": 1, "pruned_experts": [[7, 1]]}, None, None, "layer 7 is out of range"),
    ("g.json", {"version": 1, "pruned_experts": [[0, -1]]}, None, None, "expert -1 is out of range"),
    # vLLM: the same pair twice; pruning the shared expert every token uses
    ("h.json", {"version": 1, "pruned_experts": [[0, 1], [0, 1]]}, None, None, "[0, 1] is listed twice"),
    ("i.json", {"version": 1, "pruned_experts": [[0, 7]]}, None, None, "drops expert 7, a shared"),
    # vLLM: an unknown version
    ("j.json", {"version": 9, "pruned_experts": []}, None, None, "this emo-prune reads version 1"),
    # vLLM-Ascend: duplicate ids in a ranking, a partial ranking, a layer twice, a line that is no object
    ("k.jsonl", jsonl({"0": [0, 0, 1, 2, 3, 4, 5, 6]}, full(1)), None, "0.5", "expert 0 appears more than once"),
    ("l.jsonl", jsonl({"0": [0, 1, 2]}, full(1)), None, "0.5", "ranks 3 experts; the format lists all 8"),
    ("m.jsonl", jsonl(full(0), full(0)), None, "0.5", "layer 0 is listed twice"),
    ("n.jsonl", jsonl(full(0), "[1, 2]"), "vllm-ascend", "0.5", "line 2 must be one object"),
    ("o.jsonl", jsonl(full(0)), "vllm-ascend", "0.5", "no line for MoE layer 1"),
    # llama.cpp stats: NaN, a negative count, the wrong length, a string where numbers go
    (
        "p.json",
        '{"0": {"reap": [NaN, 1, 1, 1, 1, 1, 1, 1]}, "1": {"reap": [1, 1, 1, 1, 1, 1, 1, 1]}}',
        "llama-expert-stats",
        "0.5",
        "NaN is not a JSON number",
    ),
    ("q.json", {"0": STATS_LAYER | {"activation_counts": [-1] * E}, "1": STATS_LAYER}, None, "0.5", "activation_counts holds -1"),
    (
        "r.json",
        {"0": STATS_LAYER | {"reap": [1.0] * 3}, "1": STATS_LAYER},
        None,
        "0.5",
        "one number per expert (8 in layer 0), got 3",
    ),
    ("s.json", {"0": STATS_LAYER | {"reap": "high"}, "1": STATS_LAYER}, None, "0.5", "got str"),
    # llm-compressor: a layer name with no layer in it
    ("t.json", {"router": {"saliency": [1.0] * E}}, "llm-compressor", "0.5", "must be an integer"),
    # AI2: a layer that is not a list of ids
    ("u.json", {"experts_kept_per_layer": [[1, 2, "x"], [1, 2, 7]]}, None, None, "must be a list of integer expert ids"),
    # nothing any format recognises; deep nesting; not UTF-8
    ("v.json", {"hello": 1}, None, None, "cannot tell the format"),
    ("w.json", "[" * 100_000, "vllm", None, "is not valid JSON"),
    ("x.json", b"\xff\xfe\x00garbage", None, None, "is not UTF-8 text"),
]


@pytest.mark.parametrize("name,content,fmt,keep,message", CASES, ids=[c[0] for c in CASES])
def test_hostile_import_is_refused_in_one_line(cli, source_model, tmp_path, name, content, fmt, keep, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "plan.json"
    args = ["plan", "import", path, "--model", source_model, "--out", out]
    args += ["--format", fmt] if fmt else []
    args += ["--keep", keep] if keep else []
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_huge_file_is_refused_before_it_is_parsed(cli, source_model, tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as f:  # sparse: no disk is spent on it
        f.truncate(MAX_IMPORT_BYTES + 1)
    result = cli("plan", "import", path, "--model", source_model, "--out", tmp_path / "plan.json")
    assert result.exit_code == 1 and "larger than 32 MiB" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "plan.json").exists()


def test_a_folder_or_a_missing_file_is_refused(cli, source_model, tmp_path):
    for path, message in ((tmp_path, "is a folder"), (tmp_path / "none.json", "not found")):
        result = cli("plan", "import", path, "--model", source_model, "--out", tmp_path / "plan.json")
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not Path(tmp_path / "plan.json").exists()
