"""A benchmark report as a plain-text (Markdown) table, for scripts and RESULTS.md."""

from __future__ import annotations

from emo_prune.bench.report import BenchReport

COLUMNS = ("scope", "impl", "tokens", "ms", "best ms", "tokens/s", "GB/s", "% of read BW", "TFLOP/s", "x eager", "note")


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(report: BenchReport) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in report.rows:
        cells = (
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
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
