"""Benchmark results as plain, JSON-serialisable dataclasses (`asdict` / `to_dict`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from emo_prune.common.units import gb_per_s

# a baseline whose median call took more than this many times its fastest call was measured while
# something else held the cores (issue 25: "47.68x eager" with 0.0 GB/s under load); no ratio is
# reported against it
MAX_BASELINE_SPREAD = 1.5


@dataclass
class BenchRow:
    scope: str  # "layer" (one MoE experts call) or "model" (whole forward)
    impl: str  # experts implementation name
    tokens: int
    ms: float | None = None  # median wall time of one call
    ms_best: float | None = None  # fastest call (what an idle machine gives)
    tokens_per_s: float | None = None
    gb_s: float | None = None  # weight bytes of the distinct experts touched (+ dense weights) / time
    tflop_s: float | None = None  # 2 * multiply-adds actually needed / time
    pct_bandwidth: float | None = None  # gb_s / measured read bandwidth * 100
    speedup_vs_eager: float | None = None  # eager ms / this ms, same scope and tokens
    distinct_experts: int | None = None  # summed over layers for scope "model"
    skipped: str | None = None  # why no number: unavailable here, too much memory, error text
    spread: float | None = None  # median / fastest call: 1.0 on a quiet machine
    note: str | None = None  # e.g. why the ratio to eager is missing

    def set_time(self, timing: tuple[float, float], bytes_read: float, flops: float, bandwidth_gb_s: float | None) -> None:
        """timing: (median, best) seconds; rates are computed from the median."""
        seconds, best = timing
        self.ms, self.ms_best = seconds * 1e3, best * 1e3
        self.spread = seconds / best if best > 0 else None
        self.tokens_per_s = self.tokens / seconds
        self.gb_s = gb_per_s(bytes_read, seconds)
        self.tflop_s = flops / seconds / 1e12
        if bandwidth_gb_s:
            self.pct_bandwidth = 100.0 * self.gb_s / bandwidth_gb_s


@dataclass
class BenchReport:
    machine: dict[str, Any]
    read_bandwidth_gb_s: float | None
    settings: dict[str, Any]
    rows: list[BenchRow] = field(default_factory=list)

    def fill_speedups(self) -> None:
        """x eager per row, except against an eager measurement that is unstable (its spread above
        MAX_BASELINE_SPREAD): then no ratio, and the note says why and what the spread was."""
        eager = {(r.scope, r.tokens): r for r in self.rows if r.impl == "eager" and r.ms}
        for r in self.rows:
            base = eager.get((r.scope, r.tokens))
            if base is None or not r.ms:
                continue
            if base.spread is not None and base.spread > MAX_BASELINE_SPREAD:
                r.note = (
                    f"no x eager: eager's median call took {base.spread:.1f}x its fastest (a busy machine); rerun on a quiet one"
                )
                continue
            r.speedup_vs_eager = base.ms / r.ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
