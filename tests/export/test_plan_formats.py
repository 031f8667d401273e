"""`plan export / import`: each format read back by a small reader written from its DESCRIPTION (the PR texts
quoted in docs/plan-formats.md, not our writer), round trips, and refusals naming the format's rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emo_prune.calib import Document
from emo_prune.io import Checkpoint
from emo_prune.profile.runner import ProfileSettings, profile_model
from emo_prune.select import Plan, SelectOptions, make_plan

DOCS = [
    Document("def add(a, b):\n    return a + b\n" * 3, "code", "t"),
    Document("for i in range(10):\n    print(i * i)\n", "code", "t"),
    Document("Question: What is 17 + 25? Answer: 42. " * 2, "math", "t"),
    Document("Solve 3x + 4 = 19. So x = 5.", "math", "t"),
]


@pytest.fixture(scope="module")
def olmoe(tiny, tmp_path_factory):
    """OLMoE, 2 layers x 8 experts, top-2, and its real profile (code + math)."""
    model = tiny("olmoe", seed=3, hidden=32, expert_width=16, layers=2, experts=8, top_k=2)
    profile = profile_model(
        model, DOCS, ProfileSettings(seq_len=16, batch_size=3, max_tokens=None, device="cpu", dtype="float32")
    )
    path = profile.save(tmp_path_factory.mktemp("olmoe-profile") / "p.safetensors")
    return model, path


@pytest.fixture(scope="module")
def emo(tiny, tmp_path_factory):
    """EMO with a shared tail expert, a dense layer and per-layer counts (8, 0, 6), and its profile."""
    model = tiny("emo", seed=3, hidden=32, expert_width=16, layers=3, experts=8, top_k=3, shared=1, experts_per_layer=[8, 0, 6])
    profile = profile_model(
        model, DOCS, ProfileSettings(seq_len=16, batch_size=3, max_tokens=None, device="cpu", dtype="float32")
    )
    path = profile.save(tmp_path_factory.mktemp("emo-profile") / "p.safetensors")
    return model, path


def plan_for(model, profile, tmp_path, method="mass", keep="0.5", domains=("code",), budget="uniform") -> Path:
    plan = make_plan(model, SelectOptions(keep=keep, domains=domains, method=method, budget=budget), profile)
    return plan.save(tmp_path / f"{method}-{keep}-{budget}.json")


def kept(path) -> list:
    return Plan.load(path).experts_kept_per_layer


def layer_sizes(model) -> list[int]:
    return [lay.num_experts for lay in Checkpoint.open(model).architecture.layouts]


# ---- readers written from the formats' descriptions ------------------------------------------------
def read_vllm(path, sizes, top_k):
    """#42613 / #37824: {"version": 1, "pruned_experts": [[layer, expert], ...]} (+ model, workload);
    the loader masks the pruned experts and rejects a layer left with fewer than top-k."""
    data = json.loads(path.read_text())
    assert data["version"] == 1 and isinstance(data["model"], str) and isinstance(data["workload"], str)
    pruned: dict[int, set[int]] = {}
    for pair in data["pruned_experts"]:
        layer, expert = pair
        assert type(layer) is int and type(expert) is int and 0 <= expert < sizes[layer]
        assert expert not in pruned.setdefault(layer, set())
        pruned[layer].add(expert)
    left = [None if E == 0 else sorted(set(range(E)) - pruned.get(i, set())) for i, E in enumerate(sizes)]
    assert all(ids is None or len(ids) >= top_k for ids in left)
    return left


def read_vllm_ascend(path, sizes, ratio):
    """#12525: JSONL, one line per layer {"<layer>": [full ordered expert list]}; keep the first E * (1 - ratio)."""
    kept_by_layer = {}
    for line in path.read_text().splitlines():
        ((key, ranking),) = json.loads(line).items()
        layer = int(key)
        assert sorted(ranking) == list(range(sizes[layer]))  # the FULL list
        kept_by_layer[layer] = sorted(ranking[: round(sizes[layer] * (1 - ratio))])
    assert sorted(kept_by_layer) == [i for i, E in enumerate(sizes) if E > 0]
    return [kept_by_layer.get(i) for i in range(len(sizes))]


def read_llama_stats(path, sizes):
    """#20454: per layer {total_tokens, activation_counts, activation_frequency, avg_gate_weight, ean_mean,
    reap, never_activated}; gguf_prune ranks each layer's experts by reap."""
    data = json.loads(path.read_text())
    assert sorted(data, key=int) == [str(i) for i, E in enumerate(sizes) if E > 0]
    rankings = {}
    for key, entry in data.items():
        E = sizes[int(key)]
        assert set(entry) == {
            "total_tokens",
            "activation_counts",
            "activation_frequency",
            "avg_gate_weight",
            "ean_mean",
            "reap",
            "never_activated",
        }
        assert type(entry["total_tokens"]) is int and entry["total_tokens"] > 0
        for field in ("activation_counts", "activation_frequency", "avg_gate_weight", "ean_mean", "reap"):
            assert len(entry[field]) == E and all(v >= 0 for v in entry[field])
        assert entry["activation_frequency"] == pytest.approx([c / entry["total_tokens"] for c in entry["activation_counts"]])
        assert entry["never_activated"] == [e for e in range(E) if entry["activation_counts"][e] == 0]
        rankings[int(key)] = sorted(range(E), key=lambda e: (-entry["reap"][e], e))
    return rankings


# ---- round trips and schemas ------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["vllm", "ai2"])
def test_plan_round_trips_through_kept_set_formats(cli, olmoe, emo, tmp_path, fmt):
    for (model, profile), budget in ((olmoe, "uniform"), (emo, "global")):  # emo: per-layer counts and a dense layer
        plan = plan_for(model, profile, tmp_path, budget=budget)
        out = tmp_path / f"{fmt}-{budget}.json"
        result = cli("plan", "export", plan, "--model", model, "--format", fmt, "--out", out)
        assert result.exit_code == 0, result.output
        if fmt == "vllm":
            top_k = Checkpoint.open(model).architecture.layouts[0].top_k
            assert read_vllm(out, layer_sizes(model), top_k) == [None if ids is None else sorted(ids) for ids in kept(plan)]
        else:
            assert json.loads(out.read_text())["experts_kept_per_layer"] == kept(plan)
        back = tmp_path / f"back-{fmt}-{budget}.json"
        result = cli("plan", "import", out, "--model", model, "--out", back)
        assert result.exit_code == 0, result.output
        assert kept(back) == kept(plan)
        assert Plan.load(back).method == f"import:{fmt}"


@pytest.mark.parametrize("method", ["mass", "easy_ep", "coverage"])
def test_vllm_ascend_ranking_keeps_what_select_keeps(cli, olmoe, tmp_path, method):
    model, profile = olmoe
    out = tmp_path / "experts.jsonl"
    result = cli(
        "plan", "export", profile, "--format", "vllm-ascend", "--method", method, "--domain", "code", "--keep", "4", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert '"expert_prune_ratio": 0.5' in result.output
    plan = plan_for(model, profile, tmp_path, method=method, keep="4")
    assert read_vllm_ascend(out, layer_sizes(model), 0.5) == kept(plan)
    back = tmp_path / "back.json"
    assert cli("plan", "import", out, "--model", model, "--keep", "4", "--out", back).exit_code == 0
    assert kept(back) == kept(plan)


def test_llama_expert_stats_rank_as_reap_does(cli, olmoe, tmp_path):
    model, profile = olmoe
    out = tmp_path / "expert_stats.json"
    assert cli("plan", "export", profile, "--format", "llama-expert-stats", "--domain", "math", "--out", out).exit_code == 0
    rankings = read_llama_stats(out, layer_sizes(model))
    plan = plan_for(model, profile, tmp_path, method="reap", keep="3", domains=("math",))
    assert [sorted(rankings[i][:3]) for i in range(2)] == kept(plan)
    back = tmp_path / "back.json"
    assert cli("plan", "import", out, "--model", model, "--keep", "3", "--out", back).exit_code == 0
    assert kept(back) == kept(plan)


def test_llm_compressor_report_is_ranked_by_saliency(cli, olmoe, tmp_path):
    model, _ = olmoe
    report = tmp_path / "reap_report.json"
    saliency = [[0.1, 0.9, 0.3, 0.8, 0.0, 0.2, 0.7, 0.4], [0.5, 0.5, 0.1, 0.2, 0.9, 0.3, 0.0, 0.6]]
    report.write_text(
        json.dumps(
            {
                f"model.layers.{i}.mlp": {"saliency": s, "count": [3] * 8, "topk_weights": [0.1] * 8}
                for i, s in enumerate(saliency)
            }
        )
    )
    back = tmp_path / "plan.json"
    result = cli("plan", "import", report, "--model", model, "--keep", "3", "--out", back)
    assert result.exit_code == 0, result.output
    assert kept(back) == [[1, 3, 6], [0, 4, 7]]  # layer 1: 0.9, 0.6, then the tie 0.5 / 0.5 goes to the lower id 0


# ---- refusals --------------------------------------------------------------------------------------
def refused(cli, args, message, tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_exports_refuse_what_the_consumer_cannot_express(cli, olmoe, emo, tmp_path):
    model, profile = olmoe
    plan = plan_for(model, profile, tmp_path)
    _, emo_profile = emo
    out = tmp_path / "out.json"
    cases = [
        (
            ("plan", "export", plan, "--model", model, "--format", "vllm-ascend", "--out", out),
            "needs every layer's full expert ranking",
        ),
        (
            ("plan", "export", plan, "--model", model, "--format", "llama-expert-stats", "--out", out),
            "needs per-expert statistics",
        ),
        (("plan", "export", profile, "--format", "vllm", "--out", out), "a profile does not choose"),
        (("plan", "export", plan, "--format", "vllm", "--out", out), "needs --model"),
        (("plan", "export", plan, "--model", model, "--format", "gguf", "--out", out), "unknown --format 'gguf'"),
        (
            ("plan", "export", emo_profile, "--format", "vllm-ascend", "--keep", "4", "--out", out),
            "one expert_prune_ratio to every layer",
        ),
        (("plan", "export", profile, "--format", "vllm-ascend", "--keep", "0.125", "--out", out), "top-k"),
        (
            ("plan", "export", profile, "--format", "vllm-ascend", "--method", "greedy", "--out", out),
            "does not rank from a profile",
        ),
        (("plan", "export", plan, "--model", model, "--format", "vllm", "--out", tmp_path), "is a folder"),
        (("plan", "import", plan, "--model", model, "--keep", "2", "--out", out), "--keep does not apply"),
    ]
    for args, message in cases:
        refused(cli, args, message, tmp_path)
    assert cli("plan", "export", plan, "--model", model, "--format", "vllm", "--out", out).exit_code == 0
    before = out.read_bytes()
    refused(cli, ("plan", "export", plan, "--model", model, "--format", "vllm", "--out", out), "--overwrite", tmp_path)
    assert out.read_bytes() == before
    assert cli("plan", "export", plan, "--model", model, "--format", "ai2", "--out", out, "--overwrite").exit_code == 0
    assert "experts_kept_per_layer" in json.loads(out.read_text())


def test_imports_refuse_fewer_than_top_k_and_missing_keep(cli, olmoe, tmp_path):
    model, profile = olmoe
    bad = tmp_path / "pruned.json"
    bad.write_text(json.dumps({"version": 1, "pruned_experts": [[0, e] for e in range(7)]}))
    refused(cli, ("plan", "import", bad, "--model", model, "--out", tmp_path / "p.json"), "fewer than its top-k 2", tmp_path)
    ranking = tmp_path / "experts.jsonl"
    assert cli("plan", "export", profile, "--format", "vllm-ascend", "--out", ranking).exit_code == 0
    refused(cli, ("plan", "import", ranking, "--model", model, "--out", tmp_path / "p.json"), "pass --keep", tmp_path)
