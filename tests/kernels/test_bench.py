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
        ("eager", 1),
        ("grouped_mm", 1),
        ("batched_mm", 1),
        ("emo_cpu", 1),
        ("emo_triton", 1),
    ]
    by = {(r.impl, r.tokens): r for r in report.rows}
    assert "CUDA" in by[("emo_triton", 1)].skipped  # CPU tensors: no Triton row, said why
    eager = by[("eager", 3)]  # 1.0x, or no ratio when this busy machine made its own baseline unstable
    assert eager.speedup_vs_eager == pytest.approx(1.0) if eager.note is None else "no x eager" in eager.note
    assert by[("emo_cpu", 3)].ms > 0 and by[("emo_cpu", 3)].gb_s > 0 and by[("emo_cpu", 3)].tflop_s > 0
    assert 1 <= by[("emo_cpu", 3)].distinct_experts <= 4
    json.dumps(report.to_dict())  # plain JSON
    assert "| layer | emo_cpu | 3 |" in markdown_table(report)


def test_no_ratio_against_an_unstable_baseline() -> None:
    from emo_prune.bench.report import BenchReport, BenchRow

    def report(eager_timing: tuple[float, float]) -> dict[str, BenchRow]:
        rows = [BenchRow("layer", impl, 8) for impl in ("eager", "emo_cpu")]
        rows[0].set_time(eager_timing, 1e6, 1e6, None)
        rows[1].set_time((0.5, 0.5), 1e6, 1e6, None)
        BenchReport(machine={}, read_bandwidth_gb_s=None, settings={}, rows=rows).fill_speedups()
        return {r.impl: r for r in rows}

    steady = report((1.1, 1.0))  # median within 1.5x of the fastest call: a ratio
    assert steady["emo_cpu"].speedup_vs_eager == pytest.approx(2.2) and steady["emo_cpu"].note is None
    busy = report((3.0, 1.0))  # median 3x the fastest: the baseline was measured under load
    assert busy["emo_cpu"].speedup_vs_eager is None and "eager's median call took 3.0x its fastest" in busy["emo_cpu"].note


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
