"""Pool index (`--pool-index`): entries equal a reference computation, pools are the top of the nearest
entries' answer mass, pool mode's guarantees still hold, and an untrusted index file is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_pool_cli import invoke
from test_pool_runtime import CONTEXT, CONTINUATION, masked_reference

from emo_prune.calib.pairs import context_answer_pairs
from emo_prune.errors import PlanError
from emo_prune.io import Checkpoint
from emo_prune.models.weights import load_pretrained
from emo_prune.routing import router_probabilities
from emo_prune.serve import PoolSettings, load_pool_runtime
from emo_prune.serve.index_build import IndexPair, index_pairs
from emo_prune.serve.index_file import PoolIndex, request_key
from emo_prune.serve.selection import choose_pool
from emo_prune.testing import write_tiny_model

PAIRS = [
    IndexPair("math", [5, 17, 33, 2, 99], [250, 7, 61, 400, 12, 8]),
    IndexPair("code", [300, 301, 302, 303], [44, 3, 180, 9]),
    IndexPair("prose", [70, 71, 72, 73, 74, 75], [76, 77]),
    IndexPair("math", [5, 17, 33, 2, 98, 97], [250, 7, 60, 1]),
]


@pytest.fixture(scope="module")
def index_file(pool_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_pairs(pool_models["shared"], PAIRS).save(tmp_path_factory.mktemp("index") / "pools.index.safetensors")


def router_logits(model_dir: Path, ids: list[int]) -> list[torch.Tensor]:
    """The WHOLE model's router logits [S, E] of every layer for `ids`, read by forward hooks."""
    model = load_pretrained(model_dir, torch.float32)
    logits: list[torch.Tensor] = []
    for layer in model.model.layers:
        layer.mlp.gate.register_forward_hook(
            lambda module, args, output: logits.append(output[0].reshape(-1, output[0].shape[-1]))
        )
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]))
    return logits


def test_entries_equal_a_reference(pool_models: dict[str, Path], index_file: Path) -> None:
    model = pool_models["shared"]
    checkpoint = Checkpoint.open(model)
    index = PoolIndex.load(index_file, checkpoint)
    layouts = checkpoint.architecture.layouts
    assert index.domains == ("math", "code", "prose", "math") and index.key_layer == 0 and index.power == 1.0
    assert index.mass_of == "document"
    for n, pair in enumerate(PAIRS):
        logits = router_logits(model, pair.context + pair.answer)
        probabilities = [router_probabilities(lg, layouts[i].routing_spec()).double() for i, lg in enumerate(logits)]
        key = probabilities[0][: len(pair.context), list(layouts[0].routed_ids)].sum(dim=0)
        torch.testing.assert_close(index.keys[n].double(), key / key.norm(), atol=1e-5, rtol=1e-5)
        for layer, p in enumerate(probabilities):
            document_mass = p.mean(dim=0)  # context and answer tokens: the default, EMO's pool rule
            torch.testing.assert_close(index.values[layer][n].double(), document_mass, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("power", "mass_of"), [(1.0, "document"), (2.0, "document"), (1.0, "answer"), (2.0, "answer")])
def test_entries_equal_pool_mode_with_every_expert(
    pool_models: dict[str, Path], tmp_path: Path, power: float, mass_of: str
) -> None:
    """The index is built by the whole model in one forward per pair; pool mode with every expert in the
    pool, fed the context and then the answer on its KV cache, must give the same entries."""
    model = pool_models["shared"]
    index = PoolIndex.load(
        index_pairs(model, PAIRS, power=power, mass_of=mass_of).save(tmp_path / "i.safetensors"), Checkpoint.open(model)
    )
    assert (index.power, index.mass_of) == (power, mass_of)
    runtime = load_pool_runtime(model, PoolSettings(pool="1.0", pool_power=power))
    first = runtime.layouts[0]
    for n, pair in enumerate(PAIRS):
        request, cache = runtime.begin(), runtime.new_cache()
        runtime.forward(pair.context, cache)
        runtime.end_prefill()
        torch.testing.assert_close(index.keys[n], request_key(request.context_mass[first.index], first), atol=1e-5, rtol=1e-5)
        before = {layer: mass.clone() for layer, mass in request.mass.items()}
        runtime.forward(pair.answer, cache)
        for layer, values in index.values.items():
            if mass_of == "answer":
                expected = (request.mass[layer] - before[layer]) / len(pair.answer)
            else:
                expected = request.mass[layer] / (len(pair.context) + len(pair.answer))
            torch.testing.assert_close(values[n], expected.float(), atol=1e-5, rtol=1e-5)


def test_pools_are_the_top_of_the_nearest_answers_mass(pool_models: dict[str, Path], index_file: Path) -> None:
    model = pool_models["shared"]
    runtime = load_pool_runtime(model, PoolSettings(pool="0.5", pool_index=str(index_file), pool_neighbours=2))
    _, _, report = runtime.score(CONTEXT, CONTINUATION)
    index, layouts = runtime.index, runtime.layouts
    probabilities = router_probabilities(router_logits(model, CONTEXT)[0], layouts[0].routing_spec())
    key = probabilities[:, list(layouts[0].routed_ids)].sum(dim=0)
    similarity = index.keys @ (key / key.norm())
    nearest = similarity.argsort(descending=True)[:2].tolist()
    assert [n.entry for n in report.neighbours] == nearest
    assert [n.similarity for n in report.neighbours] == pytest.approx(similarity[nearest].tolist(), abs=1e-5)
    for layer, ids in report.pools.items():
        mass = index.values[layer][nearest].double().mean(dim=0)
        assert ids == choose_pool(mass, layouts[layer], runtime.sizes[layer])
    # and the pools are not what the context's own mass picks: the index changes the choice
    plain = load_pool_runtime(model, PoolSettings(pool="0.5")).score(CONTEXT, CONTINUATION)[2]
    assert plain.pools != report.pools


def test_index_pools_keep_pool_modes_guarantees(pool_models: dict[str, Path], index_file: Path) -> None:
    model = pool_models["shared"]
    runtime = load_pool_runtime(model, PoolSettings(pool="0.5", pool_index=str(index_file)))
    logprobs, _, report = runtime.score(CONTEXT, CONTINUATION)
    # equals the whole model with every router logit outside the pools at -inf
    reference = masked_reference(model, report.pools, CONTEXT + CONTINUATION[:-1])[len(CONTEXT) - 1 :]
    torch.testing.assert_close(logprobs, reference.gather(1, torch.tensor(CONTINUATION)[:, None])[:, 0], atol=1e-5, rtol=1e-5)
    # the prefill ran only pool experts, and read each exactly once
    called = {(layer, e) for (layer, e), tokens in report.calls.items() if tokens}
    assert called <= {(layer, e) for layer, ids in report.pools.items() for e in ids}
    # the pools never depend on the continuation
    for continuation in ([300, 301, 302], list(reversed(CONTINUATION)) * 3):
        assert runtime.score(CONTEXT, continuation)[2].pools == report.pools
    assert report.to_dict()["neighbours"][0]["domain"] in {"math", "code", "prose"}


def test_an_index_of_another_model_is_refused(index_file: Path, tmp_path: Path) -> None:
    retrained = write_tiny_model(tmp_path / "other", "emo", seed=1, layers=3, experts=16, top_k=4, expert_width=16, shared=1)
    with pytest.raises(PlanError, match="built for another model"):
        load_pool_runtime(retrained, PoolSettings(pool="0.5", pool_index=str(index_file)))
    fewer_layers = write_tiny_model(tmp_path / "two", "emo", layers=2, experts=16, top_k=4, expert_width=16, shared=1)
    with pytest.raises(PlanError, match="does not fit"):
        load_pool_runtime(fewer_layers, PoolSettings(pool="0.5", pool_index=str(index_file)))


def _corrupt(index_file: Path, path: Path, change) -> Path:
    from safetensors import safe_open

    with safe_open(str(index_file), framework="pt") as f:
        metadata, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    change(metadata, tensors)
    save_file(tensors, str(path), metadata=metadata)
    return path


def _set_meta(field: str, value: object):
    def change(metadata: dict, tensors: dict) -> None:
        meta = json.loads(metadata["emo_prune.pool_index"])
        meta[field] = value
        metadata["emo_prune.pool_index"] = json.dumps(meta)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m, t: t.__setitem__("values.1", torch.full_like(t["values.1"], float("nan"))), "non-finite"),
        (lambda m, t: t.__setitem__("values.2", t["values.2"][:, :5].contiguous()), "does not fit"),
        (lambda m, t: t.__setitem__("keys", t["keys"][:2].contiguous()), "keys of shape"),
        (lambda m, t: t.__setitem__("../../etc/passwd", t["keys"].clone()), "unexpected tensor"),
        (_set_meta("domains", "math"), "fingerprint or domains"),
        (_set_meta("power", -1), "power"),
        (_set_meta("mass_of", "tokens"), "mass_of"),
        (_set_meta("format", 99), "format 99"),
        (lambda m, t: m.pop("emo_prune.pool_index"), "not an emo-prune pool index"),
    ],
)
def test_a_bad_index_file_is_refused_clearly(
    pool_models: dict[str, Path], index_file: Path, tmp_path: Path, change, message: str
) -> None:
    bad = _corrupt(index_file, tmp_path / "bad.safetensors", change)
    with pytest.raises(PlanError, match=message):
        PoolIndex.load(bad, Checkpoint.open(pool_models["shared"]))


def test_a_missing_or_unreadable_index_is_refused(pool_models: dict[str, Path], tmp_path: Path) -> None:
    checkpoint = Checkpoint.open(pool_models["shared"])
    with pytest.raises(PlanError, match="not found"):
        PoolIndex.load(tmp_path / "nope.safetensors", checkpoint)
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{junk}")
    with pytest.raises(PlanError, match="not a readable pool index"):
        PoolIndex.load(tmp_path / "junk.safetensors", checkpoint)


def test_index_and_reselection_are_exclusive() -> None:
    with pytest.raises(PlanError, match="use one or the other"):
        PoolSettings(pool="0.5", pool_index="x", reselect_every=8)
    with pytest.raises(PlanError, match="pool-neighbours"):
        PoolSettings(pool="0.5", pool_neighbours=0)
    with pytest.raises(PlanError, match="index-weight"):
        PoolSettings(pool="0.5", index_weight=0)


def test_a_draft_refines_the_index_pools(pool_models: dict[str, Path], index_file: Path) -> None:
    """Index + draft: the pools are the top of weight x the neighbours' answer mass + the draft's mean mass,
    and still equal masked routing and never depend on the continuation."""
    model = pool_models["shared"]
    settings = PoolSettings(pool="0.5", pool_index=str(index_file), pool_neighbours=2, draft=3, index_weight=0.5)
    runtime = load_pool_runtime(model, settings)
    logprobs, _, report = runtime.score(CONTEXT, CONTINUATION)
    # the reference: the index's pools, a greedy 3-token draft within them, its mean router mass per layer
    first = load_pool_runtime(model, PoolSettings(pool="0.5", pool_index=str(index_file), pool_neighbours=2))
    cache, logits = first.prefill(CONTEXT)
    request = first.request
    neighbours_mass, before, draft = request.prior, dict(request.mass), []
    for _ in range(3):
        draft.append(int(logits.argmax()))
        logits = first.forward([draft[-1]], cache)[-1]
    # layer 0's draft mass is the whole model's (no expert precedes its router): an independent reference
    layout0 = runtime.layouts[0]
    whole = router_probabilities(router_logits(model, CONTEXT + draft)[0], layout0.routing_spec())[len(CONTEXT) :].double()
    torch.testing.assert_close((request.mass[0] - before[0]) / 3, whole.mean(dim=0), atol=1e-6, rtol=1e-5)
    for layer, ids in report.pools.items():
        mass = 0.5 * neighbours_mass[layer] + (request.mass[layer] - before[layer]) / 3
        assert ids == choose_pool(mass, runtime.layouts[layer], runtime.sizes[layer])
    reference = masked_reference(model, report.pools, CONTEXT + CONTINUATION[:-1])[len(CONTEXT) - 1 :]
    torch.testing.assert_close(logprobs, reference.gather(1, torch.tensor(CONTINUATION)[:, None])[:, 0], atol=1e-5, rtol=1e-5)
    assert runtime.score(CONTEXT, [300, 301, 302])[2].pools == report.pools


def test_pairs_follow_one_rule_for_every_source() -> None:
    code = 'def add(a, b):\n    """Add."""\n    total = a + b\n    return total\n'
    assert context_answer_pairs(code) == [
        {"context": 'def add(a, b):\n    """Add."""\n', "answer": "    total = a + b\n    return total"}
    ]
    assert context_answer_pairs("Question: What is 2 + 2?\nAnswer: 2 + 2 = 4.") == [
        {"context": "Question: What is 2 + 2?\nAnswer:", "answer": " 2 + 2 = 4."}
    ]
    assert context_answer_pairs("One paragraph.\n\nThe next one.") == [
        {"context": "One paragraph.\n\n", "answer": "The next one."}
    ]
    assert context_answer_pairs("A single paragraph.") == []


def test_cli_builds_an_index_and_uses_it(pool_models: dict[str, Path], tmp_path: Path) -> None:
    model, target = pool_models["shared"], tmp_path / "x.index.safetensors"
    built = invoke("--json", "pool-index", model, "--calib", "math=builtin:math:calib", "--calib", "code=builtin:code:calib",
                   "--max-pairs", 3, "--out", target)  # fmt: skip
    assert built.exit_code == 0, built.output
    data = json.loads(built.output)
    assert data["entries"] == 6 and data["domains"] == {"math": 3, "code": 3} and target.exists()
    again = invoke("pool-index", model, "--calib", "builtin:math:calib", "--max-pairs", 2, "--out", target)
    assert again.exit_code == 1 and "pass --overwrite" in again.output
    no_size = invoke("generate", model, "--pool-index", target, "--prompt", "hello")
    assert no_size.exit_code == 1 and "give their size too: --pool" in no_size.output
    generated = invoke(
        "generate",
        model,
        "--pool",
        "0.5",
        "--pool-index",
        target,
        "--prompt",
        "Question: What is 3 + 4?\nAnswer:",
        "--max-new-tokens",
        2,
    )
    assert generated.exit_code == 0, generated.output
    assert "pools from the router mass of 6 requests of the index" in generated.output
    out = tmp_path / "r.json"
    evaluated = invoke("eval", model, "--pool", "0.5", "--pool-index", target, "--pool-neighbours", 2, "--tasks", "emo_answer_math",
                       "--limit", 2, "--out", out)  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    requests = json.loads(out.read_text())["model"]["requests"]
    assert len(requests) == 2 and all(len(r["neighbours"]) == 2 for r in requests)


def test_cli_never_replaces_a_file_that_is_not_an_index(pool_models: dict[str, Path], tmp_path: Path) -> None:
    precious = tmp_path / "notes.safetensors"
    precious.write_bytes(b"keep me")
    result = invoke(
        "pool-index", pool_models["shared"], "--calib", "builtin:math:calib", "--max-pairs", 1, "--out", precious, "--overwrite"
    )
    assert result.exit_code == 1 and "not an emo-prune pool index" in result.output
    assert precious.read_bytes() == b"keep me"


def test_domain_names_of_an_index_cannot_carry_markup(pool_models: dict[str, Path], index_file: Path, tmp_path: Path) -> None:
    bad = _corrupt(index_file, tmp_path / "bad.safetensors", _set_meta("domains", ["math", "[red]x[/red]", "prose", "math"]))
    with pytest.raises(PlanError, match=r"domain name '\[red\]x\[/red\]' is not allowed; a domain is 1-64 ASCII letters"):
        PoolIndex.load(bad, Checkpoint.open(pool_models["shared"]))


def test_a_jsonl_of_context_answer_records_is_indexed_as_it_is(pool_models: dict[str, Path], tmp_path: Path) -> None:
    records = tmp_path / "requests.jsonl"
    lines = [
        {"context": "Question: What is 3 + 4?\nAnswer:", "answer": " 3 + 4 = 7."},
        {"context": "Translate to French: cat", "answer": " chat", "domain": "translate"},
        {"context": "def f(x):", "answer": "    return x"},
    ]
    records.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    target = tmp_path / "r.index.safetensors"
    built = invoke("--json", "pool-index", pool_models["shared"], "--calib", records, "--out", target)
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["domains"] == {"requests": 2, "translate": 1}
    named = invoke("--json", "pool-index", pool_models["shared"], "--calib", f"chat={records}", "--out", target, "--overwrite")
    assert json.loads(named.output)["domains"] == {"chat": 3}
    records.write_text(json.dumps(lines[0]) + '\n{"context": "no answer"}\n')
    broken = invoke("pool-index", pool_models["shared"], "--calib", records, "--out", tmp_path / "b.safetensors")
    assert broken.exit_code == 1 and "requests.jsonl:2" in broken.output and not (tmp_path / "b.safetensors").exists()
    records.write_text(json.dumps({**lines[0], "domain": "[bold]x"}) + "\n")
    marked = invoke("pool-index", pool_models["shared"], "--calib", records, "--out", tmp_path / "m.safetensors")
    assert marked.exit_code == 1 and "domain name" in marked.output
