"""Plan files: hand-written and AI2 plans accepted, every invalid plan refused before anything is written."""

from __future__ import annotations

import json

import pytest

from emo_prune.errors import PlanError
from emo_prune.extract import extract
from emo_prune.select import Plan


def nothing_written(out):
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return not out.exists() and not leftovers


@pytest.mark.parametrize(
    "kept, message",
    [
        ([[0, 1, 7]], "lists 1 layers, but the model has 2"),  # wrong number of layers
        ([[0, 1, 7], [0, 8, 7]], "layer 1 names expert 8, out of range 0..7"),  # id out of range
        ([[0, 1, 7], [0, 0, 7]], "layer 1 lists expert 0 more than once"),  # repeated id
        ([[0, 1, 7], [7]], "layer 1 keeps 1 experts, fewer than its top-k 2"),  # fewer than top-k
        ([[0, 1, 7], [0, 1, 2]], "drops expert 7, a shared"),  # the shared expert dropped
        ([[0, 1, 7], None], "layer 1 is an MoE layer"),  # null for an MoE layer
        ([[0, 1, 7], ["a", 7]], "list of integer expert ids"),  # not ids
    ],
)
def test_invalid_plans_are_refused_before_writing(tiny, tmp_path, kept, message):
    model = tiny("emo")
    out = tmp_path / "out"
    with pytest.raises(PlanError, match=message):
        extract(model, Plan.from_dict({"experts_kept_per_layer": kept}), out)
    assert nothing_written(out)


def test_per_layer_counts_refused_where_the_config_cannot_express_them(tiny, tmp_path):
    with pytest.raises(PlanError, match="olmoe config cannot express"):
        extract(tiny("olmoe"), Plan([[0, 1, 2], [0, 1]]), tmp_path / "out")
    assert nothing_written(tmp_path / "out")


def test_dense_layer_entry_must_be_null(tiny, tmp_path):
    model = tiny("emo", layers=3, experts_per_layer=[8, 0, 6])
    with pytest.raises(PlanError, match="layer 1 is a dense MLP layer"):
        extract(model, Plan([[0, 1, 7], [0, 1], [0, 1, 5]]), tmp_path / "out")


def test_hand_written_plan_in_any_order_is_canonicalized(tiny, tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"experts_kept_per_layer": [[7, 5, 2], [3, 7, 0, 1]]}))
    result = extract(tiny("emo"), Plan.load(plan_file), tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "emo_prune.json").read_text())
    assert manifest["experts_kept_per_layer"] == [[2, 5, 7], [0, 1, 3, 7]]  # routed ascending, shared last
    assert manifest["index_map"][0] == {"2": 0, "5": 1, "7": 2}
    assert result.kept_counts == [3, 4]


def test_ai2_metadata_and_our_manifest_are_plans(tiny, tmp_path):
    model = tiny("emo")
    extract(model, Plan([[1, 4, 7], [0, 2, 7]]), tmp_path / "a")
    ai2 = json.loads((tmp_path / "a" / "pruning_metadata.json").read_text())
    assert ai2["experts_kept_per_layer"] == [[1, 4, 7], [0, 2, 7]] and ai2["method"] == "manual"
    for source in ("pruning_metadata.json", "emo_prune.json"):
        assert Plan.load(tmp_path / "a" / source).experts_kept_per_layer == [[1, 4, 7], [0, 2, 7]]
    assert Plan.load(tmp_path / "a").experts_kept_per_layer == [[1, 4, 7], [0, 2, 7]]  # a folder: its manifest


def test_plan_files_round_trip_and_refuse_clobbering(tmp_path):
    plan = Plan([[0, 3], None, [1, 2]], keep="2", method="mass", domains=["code"], coverage={"code": [0.5, None, 1.0]})
    path = plan.save(tmp_path / "p.json")
    again = Plan.load(path)
    assert again.experts_kept_per_layer == plan.experts_kept_per_layer and again.coverage == plan.coverage
    assert json.loads(path.read_text())["index_map"] == [{"0": 0, "3": 1}, None, {"1": 0, "2": 1}]
    plan.save(path)  # replacing a plan is fine
    other = tmp_path / "config.json"
    other.write_text('{"model_type": "emo"}')
    with pytest.raises(PlanError, match="not a plan file"):
        plan.save(other)
    assert json.loads(other.read_text()) == {"model_type": "emo"}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.load(bad)
    with pytest.raises(PlanError, match="has no 'experts_kept_per_layer'"):
        Plan.from_dict({"method": "mass"})
    with pytest.raises(PlanError, match="not found"):
        Plan.load(tmp_path / "missing.json")
