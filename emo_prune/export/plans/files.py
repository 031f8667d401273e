"""Reading other tools' files defensively, and writing ours atomically.

An imported file is untrusted: it is read up to MAX_IMPORT_BYTES (a bigger file is refused before it
is parsed), parsed as strict JSON (NaN / Infinity refused), and every id and number is checked
against the model's layouts before a plan is made from it. Every refusal is a PlanError naming the
file and the field. Exports are written by `emo_prune.io.atomic.write_output` (locked, atomic), never
over an existing file without `overwrite`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.io.atomic import check_output_file, write_output

# the largest import read: a full ranking of 512 experts x 128 layers is ~0.3 MB, statistics ~10x that
MAX_IMPORT_BYTES = 32 * 1024 * 1024


def read_capped(path: Path, limit: int = MAX_IMPORT_BYTES) -> str:
    """The text of `path`, refusing files over `limit` bytes without reading past the limit."""
    try:
        with Path(path).open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise PlanError(f"{path} not found") from None
    except IsADirectoryError:
        raise PlanError(f"{path} is a folder; pass the file to import") from None
    except OSError as exc:
        raise PlanError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise PlanError(f"{path} is larger than {limit // (1024 * 1024)} MiB; refusing to import it (not a plan file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PlanError(f"{path} is not UTF-8 text") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, where: str) -> Any:
    """Strict JSON (no NaN / Infinity); deep nesting and bad syntax are PlanErrors."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise PlanError(f"{where} is not valid JSON: {str(exc)[:200]}") from None


def as_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{where} must be an integer, got {json.dumps(value)[:60]}")
    return value


def layer_of(value: Any, layouts: list[LayerLayout], where: str) -> LayerLayout:
    """The MoE layer a file's layer id names (an int, or its decimal string as JSON keys are)."""
    if isinstance(value, str) and value.isdigit() and len(value) < 10:
        value = int(value)
    index = as_int(value, where)
    if not 0 <= index < len(layouts):
        raise PlanError(f"{where}: layer {index} is out of range (the model has layers 0..{len(layouts) - 1})")
    if layouts[index].is_dense:
        raise PlanError(f"{where}: layer {index} is a dense layer of this model (it has no experts)")
    return layouts[index]


def expert_ids(values: Any, layout: LayerLayout, where: str) -> list[int]:
    """A list of distinct expert ids of `layout`."""
    if not isinstance(values, list):
        raise PlanError(f"{where} must be a list of expert ids, got {type(values).__name__}")
    ids = [as_int(v, where) for v in values]
    bad = [e for e in ids if not 0 <= e < layout.num_experts]
    if bad:
        raise PlanError(f"{where}: expert {bad[0]} is out of range 0..{layout.num_experts - 1} of layer {layout.index}")
    repeated = sorted({e for e in ids if ids.count(e) > 1})
    if repeated:
        raise PlanError(f"{where}: expert {repeated[0]} appears more than once")
    return ids


def numbers(values: Any, layout: LayerLayout, where: str) -> list[float]:
    """One finite, non-negative number per expert of `layout`."""
    if not isinstance(values, list) or len(values) != layout.num_experts:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise PlanError(f"{where} must list one number per expert ({layout.num_experts} in layer {layout.index}), got {got}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise PlanError(f"{where} holds {json.dumps(v)[:60]}, not a finite non-negative number")
    return [float(v) for v in values]


class LayerRankings:
    """Rankings of experts per MoE layer, filled one layer entry at a time from a saliency-style file.

    Both saliency formats (llama_stats `expert_stats.json`, llm-compressor's report) say the same thing:
    one entry per MoE layer with one score per expert, higher = keep first. Ties go to the lower id."""

    def __init__(self, layouts: list[LayerLayout], where: str) -> None:
        self.layouts, self.where = layouts, where
        self.rankings: list[list[int] | None] = [None] * len(layouts)

    def rank(self, layout: LayerLayout, scores: list[float], at: str) -> None:
        """Record `layout`'s experts by descending score; PlanError if the layer came before."""
        if self.rankings[layout.index] is not None:
            raise PlanError(f"{at}: layer {layout.index} is listed twice")
        self.rankings[layout.index] = sorted(range(layout.num_experts), key=lambda e: (-scores[e], e))

    def complete(self) -> list[list[int] | None]:
        """Every MoE layer's ranking (None for dense layers); PlanError naming the first missing layer."""
        missing = [lay.index for lay, r in zip(self.layouts, self.rankings) if r is None and not lay.is_dense]
        if missing:
            raise PlanError(f"{self.where} has no entry for MoE layer {missing[0]}")
        return self.rankings


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an unusable --out before any work (`emo_prune.io.atomic.check_output_file`). Other tools'
    formats carry no mark of ours, so with --overwrite any regular file may be replaced."""
    check_output_file(out, overwrite=overwrite, recognise=_any_file, what="a plan file")


def write_export(out: Path, text: str, overwrite: bool) -> Path:
    """Write `text` to `out` by the one rule for files (`emo_prune.io.atomic.write_output`): locked,
    atomic, never over an existing file without `overwrite`."""
    return write_output(
        out, lambda f: f.write(text.encode("utf-8")), overwrite=overwrite, recognise=_any_file, what="a plan file"
    )


def _any_file(_path: Path) -> bool:
    return True
