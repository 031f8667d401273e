"""A benchmark report as a table (the CLI prints it; scripts and RESULTS.md take its Markdown) and its header."""

from __future__ import annotations

from emo_prune.bench.report import BenchReport
from emo_prune.common.table import LEFT, RIGHT, Column, ReportTable

# (header, align): names and notes left, numbers right
COLUMNS = (("scope", LEFT), ("impl", LEFT), ("tokens", RIGHT), ("ms", RIGHT), ("best ms", RIGHT), ("tokens/s", RIGHT),
           ("GB/s", RIGHT), ("% of read BW", RIGHT), ("TFLOP/s", RIGHT), ("x eager", RIGHT), ("note", LEFT))  # fmt: skip


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def bench_table(report: BenchReport) -> ReportTable:
    """One row per scope x implementation x token count; the CLI prints it, scripts print its Markdown."""
    rows = tuple(
        (
            r.scope,
            r.impl,
            str(r.tokens),
            _num(r.ms, 2),
            _num(r.ms_best, 2),
            _num(r.tokens_per_s, 0),
            _num(r.gb_s, 1),
            _num(r.pct_bandwidth, 0),
            _num(r.tflop_s, 3),
            _num(r.speedup_vs_eager, 2),
            r.skipped or r.note or "",
        )
        for r in report.rows
    )
    columns = tuple(Column(header, align) for header, align in COLUMNS)
    return ReportTable("experts implementations (x eager = eager ms / ms)", columns, rows)


def markdown_table(report: BenchReport) -> str:
    return bench_table(report).to_markdown()


def header(report: BenchReport) -> str:
    m = report.machine
    bw = _num(report.read_bandwidth_gb_s, 1)
    parts = [f"{m.get('cpu')} ({m.get('cpu_cores')} cores, torch threads {m.get('torch_threads')})"]
    if m.get("gpu"):
        parts.append(f"GPU {m['gpu']}")
    parts.append(f"torch {m.get('torch')}, transformers {m.get('transformers')}")
    parts.append(f"measured read bandwidth {bw} GB/s")
    parts.append(f"load average before the run {_num(m.get('load_average_1m'), 2)}")
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
    return "; ".join(parts) + "\n" + settings
