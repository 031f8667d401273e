"""--layerwise / --whole / --max-memory on the commands: the path taken is reported, a refusal is one line."""

from __future__ import annotations

import json

from emo_prune.extract import extract
from emo_prune.io import Checkpoint
from emo_prune.select import SelectOptions, select_experts


def test_verify_cli_picks_the_path_from_the_budget(cli, tiny, tmp_path):
    model = tiny("emo", layers=3)
    build = tmp_path / "build"
    extract(model, select_experts(Checkpoint.open(model).architecture, SelectOptions(keep="0.5", method="random")), build)
    auto = cli("--json", "verify", model, build)  # verify's layer stream needs less and is no slower: auto takes it
    assert auto.exit_code == 0 and json.loads(auto.stdout)["path"] == "layerwise"
    whole = cli("--json", "verify", model, build, "--whole")
    assert whole.exit_code == 0 and json.loads(whole.stdout)["path"] == "whole"
    tight = cli("--json", "verify", model, build, "--max-memory", "601MB")
    report = json.loads(tight.stdout)
    assert tight.exit_code == 0 and report["path"] == "layerwise" and len(report["per_layer_max_abs_diff"]) == 3
    forced = cli("--json", "verify", model, build, "--layerwise")
    assert json.loads(forced.stdout)["path"] == "layerwise"
    refused = cli("verify", model, build, "--max-memory", "100MB")
    assert refused.exit_code == 1 and "not enough memory: verify does not fit in 100 MB (--max-memory)" in refused.output
