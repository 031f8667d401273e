"""The benchmark library and CLI: rows, skips and JSON shape (timings themselves are not checked)."""

from __future__ import annotations

import json

import pytest
import torch

from emo_prune.bench import bench_layer, bench_model, markdown_table
from emo_prune.testing.factory import write_tiny_model

FAST = dict(measure_bandwidth=False, min_seconds=0.0)


def test_layer_rows_cover_every_impl_and_token_count() -> None:
    report = bench_layer(hidden=64, width=32, experts=4, top_k=2, tokens=(1, 3), dtype=torch.float32, **FAST)
    assert [(r.impl, r.tokens) for r in report.rows][:5] == [
        ("eager", 1), ("grouped_mm", 1), ("batched_mm", 1), ("emo_cpu", 1), ("emo_triton", 1)
    ]
    by = {(r.impl, r.tokens): r for r in report.rows}
    assert "CUDA" in by[("emo_triton", 1)].skipped  # CPU tensors: no Triton row, said why
    assert by[("eager", 3)].speedup_vs_eager == pytest.approx(1.0)
    assert by[("emo_cpu", 3)].ms > 0 and by[("emo_cpu", 3)].gb_s > 0 and by[("emo_cpu", 3)].tflop_s > 0
    assert 1 <= by[("emo_cpu", 3)].distinct_experts <= 4
    json.dumps(report.to_dict())  # plain JSON
    assert "| layer | emo_cpu | 3 |" in markdown_table(report)


def test_batched_mm_is_skipped_when_it_would_copy_gigabytes() -> None:
    # 64 tokens x top-8 of EMO-width experts: batched_mm would gather 6.4 GB of weight copies
    from emo_prune.bench.layer import skip_reason

    assert "GB" in skip_reason("batched_mm", torch.device("cpu"), 64 * 8, 12_582_912)
    assert skip_reason("batched_mm", torch.device("cpu"), 8, 12_582_912) is None


@pytest.fixture(scope="module")
def tiny_emo(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("bench") / "emo", "emo", experts=8, top_k=2, with_tokenizer=False)


def test_model_rows(tiny_emo) -> None:
    report = bench_model(tiny_emo, tokens=(2,), impls=("eager", "emo_cpu"), **FAST)
    scopes = [(r.scope, r.impl) for r in report.rows]
    assert scopes == [("layer", "eager"), ("layer", "emo_cpu"), ("model", "eager"), ("model", "emo_cpu")]
    model_row = report.rows[-1]
    assert model_row.skipped is None and model_row.ms > 0
    assert model_row.distinct_experts >= 2  # summed over the 2 MoE layers
    assert report.settings["moe_layers"] == 2


def test_cli_bench_json(tiny_emo, cli) -> None:
    result = cli("--json", "bench", tiny_emo, "--tokens", "1", "--impl", "eager")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {r["impl"] for r in payload["rows"]} == {"eager"}


@pytest.mark.parametrize("flag,value", [("--tokens", "0,8"), ("--impl", "eager,fast")])
def test_cli_bench_rejects_bad_lists(tiny_emo, cli, flag: str, value: str) -> None:
    result = cli("bench", tiny_emo, flag, value)
    assert result.exit_code == 1 and flag in result.output
