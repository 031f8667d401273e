"""`--keep K`: a fraction of each layer's experts (0.25, 0.125) or a count per layer (32, 16).

The rules leave no ambiguity: a number with a decimal point, or below 1, is a fraction in (0, 1]
(`1.0` keeps every expert); a whole number greater than 1 is a count; `1` alone is an error (keep all,
or one expert?) that names both spellings. `--experts N` (text "N experts") is a count, 1 included.

As in AI2's pipeline the count includes the fixed experts (shared tail / always-active), which are
always kept: keep 0.25 of EMO's 128 experts = 32 = 31 routed + 1 shared. A fraction resolves per layer
as round(K * E_l) (`LayerLayout.experts_at`, also the profile's EMO pool budgets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from emo_prune.arch import LayerLayout
from emo_prune.common.text import plural
from emo_prune.errors import PlanError


@dataclass(frozen=True)
class Keep:
    text: str  # as the user wrote it
    fraction: float | None = None
    count: int | None = None

    @classmethod
    def parse(cls, value: str | float | int) -> Keep:
        text = str(value).strip()
        count_text = text.removesuffix("experts").removesuffix("expert").strip()
        if count_text != text:  # "N experts": what --experts N records
            if not count_text.isdigit() or int(count_text) < 1:
                raise PlanError(f"--experts {count_text}: keep at least 1 expert per layer")
            return cls(text=experts_text(int(count_text)), count=int(count_text))
        try:
            number = float(text)
        except ValueError:
            raise PlanError(f"--keep {text!r} is neither a fraction (0.25) nor an expert count (32)") from None
        whole = isinstance(value, int) or text.isdigit()
        if whole and number == 1:
            raise PlanError(
                "--keep 1 is ambiguous: write --keep 1.0 to keep every expert, or --experts 1 for one expert per layer"
            )
        if whole:
            if number < 1:
                raise PlanError(f"--keep {text}: keep at least 1 expert per layer")
            return cls(text=text, count=int(number))
        if not 0 < number <= 1:
            raise PlanError(f"--keep {text}: a fraction must be in (0, 1]; a count is a whole number such as 32")
        return cls(text=text, fraction=number)

    def count_for(self, layout: LayerLayout) -> int:
        if self.count is not None:
            return min(self.count, layout.num_experts)
        return layout.experts_at(self.fraction)  # type: ignore[arg-type]


def experts_text(n: int) -> str:
    """The keep text of an explicit count: `--experts 1` -> "1 expert"."""
    return f"{n} expert" if n == 1 else f"{n} experts"


def keep_counts(keep: Keep, layouts: Sequence[LayerLayout]) -> list[int | None]:
    """Experts kept per layer (fixed ones included); None for dense layers. Refuses counts below top-k."""
    moe = [lay for lay in layouts if not lay.is_dense]
    if not moe:
        raise PlanError("the model has no MoE layer: there is nothing to prune")
    if keep.count is not None and keep.count > max(lay.num_experts for lay in moe):
        raise PlanError(f"--keep {keep.text} is more experts than any layer has ({max(lay.num_experts for lay in moe)})")
    counts: list[int | None] = [None if lay.is_dense else keep.count_for(lay) for lay in layouts]
    short = [(lay, c) for lay, c in zip(layouts, counts) if c is not None and c < lay.top_k]
    if short:
        lay, c = short[0]
        uniform = len({(m.num_experts, m.top_k) for m in moe}) == 1
        where = "per layer" if uniform else f"in layer {lay.index} (of {lay.num_experts})"
        if keep.fraction is not None:
            need = max(m.top_k / m.num_experts for m in moe)
            fix = f"use --keep >= {need:g}"
        else:
            fix = f"use --keep >= {max(m.top_k for m in moe)}"
        raise PlanError(f"keep {keep.text} leaves {plural(c, 'expert')} {where}, fewer than top-k {lay.top_k}; {fix}")
    return counts


def keep_label(keep: str | float | int) -> str:
    """A budget as a folder-name part, for plans (`--keep` text) and recipes (numbers) alike: 0.25 or
    "0.25" -> 25pct, 0.125 -> 12.5pct, 1.0 -> 100pct, 32 or "32" -> k32, "1 expert" -> k1. A whole number
    written without a decimal point is a count, as `Keep.parse` reads it."""
    number = str(keep).split()[0]
    if (isinstance(keep, int) and not isinstance(keep, bool)) or number.isdigit():
        return f"k{int(number)}"
    return f"{float(number) * 100:g}pct"
