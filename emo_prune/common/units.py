"""Sizes, durations and counts as the user reads them: every number with a unit that emo-prune prints.

Decimal units throughout (1 MB = 1e6 bytes, as model cards and transformers' shard sizes count);
io/sizes.py reads them back from what users write. Two byte forms on purpose, both asserted by tests:
`human_bytes` (three significant digits, down to bytes: tables and summaries of files) and
`rough_bytes` (whole MB, or one decimal of GB: memory estimates, which are upper bounds, not counts).
"""

from __future__ import annotations

KB, MB, GB, TB = 1e3, 1e6, 1e9, 1e12


def human_count(n: float) -> str:
    """1234567 -> '1.23M' (parameters, tokens, rates)."""
    for unit, scale in (("T", TB), ("B", GB), ("M", MB), ("k", KB)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def human_bytes(n: float) -> str:
    """12582912 -> '12.6 MB', 512 -> '512 B' (three significant digits, the unit that fits)."""
    for unit, scale in (("TB", TB), ("GB", GB), ("MB", MB), ("kB", KB)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def rough_bytes(n: float) -> str:
    """2_345_000_000 -> '2.3 GB', 12_300_000 -> '12 MB', 4_100 -> '4 kB' (a memory estimate's precision)."""
    if n >= GB:
        return f"{n / GB:.1f} GB"
    return f"{n / MB:.0f} MB" if n >= MB else f"{n / KB:.0f} kB"


def megabytes(n: float, digits: int = 1) -> str:
    """2_500_000 -> '2.5 MB': a fixed unit where numbers stand in one column or sentence and compare."""
    return f"{n / MB:.{digits}f} MB"


def gigabytes(n: float, digits: int = 1) -> str:
    """6_400_000_000 -> '6.4 GB'."""
    return f"{n / GB:.{digits}f} GB"


def gb_per_s(nbytes: float, seconds: float) -> float:
    """Bytes moved in `seconds` -> GB/s (bandwidth columns; a number, the table formats it)."""
    return nbytes / seconds / GB


def per_second(count: float, seconds: float, unit: str) -> str:
    """(12345 tokens, 10 s) -> '1.23k tok/s' with unit "tok": a rate of work done since a step began."""
    return f"{human_count(count / max(seconds, 1e-9))} {unit}/s"


def duration(seconds: float) -> str:
    """1.23 -> '1.2s' (wall time of a step, a load, a progress line)."""
    return f"{seconds:.1f}s"
