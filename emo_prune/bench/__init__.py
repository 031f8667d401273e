"""Benchmarks of MoE layers and whole models across experts implementations (eager, grouped_mm,
batched_mm, emo_cpu, emo_triton), with results as JSON-serialisable dataclasses."""

from emo_prune.bench.layer import IMPLEMENTATIONS, bench_experts, bench_layer
from emo_prune.bench.measure import machine_description, measure_read_bandwidth
from emo_prune.bench.model import bench_model
from emo_prune.bench.report import BenchReport, BenchRow
from emo_prune.bench.routing import bench_routing
from emo_prune.bench.text import bench_table, header, markdown_table

__all__ = [
    "IMPLEMENTATIONS",
    "BenchReport",
    "BenchRow",
    "bench_experts",
    "bench_layer",
    "bench_model",
    "bench_table",
    "bench_routing",
    "header",
    "machine_description",
    "markdown_table",
    "measure_read_bandwidth",
]
