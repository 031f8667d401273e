"""The coverage guard's side file: a build keeps the full router's rows of the experts it dropped."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from emo_prune.extract import extract
from emo_prune.extract.coverage import SIDE_FILE
from emo_prune.select import Plan


def test_side_file_holds_the_dropped_router_rows(tiny, tmp_path):
    # bf16, sharded: rows are copied as bytes from the right shard, in ascending id order
    model = tiny("emo", dtype=torch.bfloat16, max_shard_size="50kB")
    kept = [[1, 4, 6, 7], [0, 2, 3, 7]]
    extract(model, Plan(kept), tmp_path / "out")
    side = load_file(str(tmp_path / "out" / SIDE_FILE))
    full = {k: v for f in model.glob("*.safetensors") for k, v in load_file(str(f)).items()}
    assert set(side) == {"layers.0.weight", "layers.1.weight"}
    for layer, ids in enumerate(kept):
        dropped = [e for e in range(8) if e not in ids]
        assert torch.equal(side[f"layers.{layer}.weight"], full[f"model.layers.{layer}.mlp.gate.weight"][dropped])


def test_no_side_file_when_nothing_is_dropped(tiny, tmp_path):
    model = tiny("emo")
    extract(model, Plan([list(range(8)), list(range(8))]), tmp_path / "out")
    assert not (tmp_path / "out" / SIDE_FILE).exists()
