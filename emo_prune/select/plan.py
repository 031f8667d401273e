"""The plan file: which experts of each layer a pruned model keeps, plus how and why they were chosen.

JSON (also written into every extracted folder as `emo_prune.json`):
  experts_kept_per_layer  one list per layer of ORIGINAL expert ids, in the new order (routed ascending,
                          then the fixed shared / always-active experts ascending); null for a dense
                          layer. Same key as AI2's `pruning_metadata.json`, which is accepted as a plan.
  index_map               per layer {old id: new id} (derived; null for a dense layer)
  keep, method, budget, combine, domains, seed, within   how the selection was made
  coverage                {domain: per layer, share of the domain's routed probability mass kept}
  profile_digest, source_model (emo_prune.io.model_identity), tool_version
A hand-written plan needs only `experts_kept_per_layer`. The order of ids in it is not significant:
extraction always uses the canonical order above, which keeps shared experts LAST as EMO requires.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emo_prune.arch import LayerLayout, MoEArchitecture
from emo_prune.errors import PlanError
from emo_prune.io.atomic import write_output
from emo_prune.version import __version__

PLAN_KEY = "experts_kept_per_layer"
FORMAT = 1

Kept = list[list[int] | None]  # per layer: original ids kept (new order), None for a dense layer


def _number_list(v: Any) -> bool:
    return isinstance(v, list) and all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in v)


#: what each optional field of a loaded plan must hold (a plan file is untrusted input)
FIELD_CHECKS: dict[str, tuple[str, Any]] = {
    "keep": ("a string such as '0.125'", lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool)),
    "method": ("a string", lambda v: isinstance(v, str)),
    "budget": ("a string", lambda v: isinstance(v, str)),
    "combine": ("a string", lambda v: isinstance(v, str)),
    "domains": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(d, str) for d in v)),
    "seed": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "within": ("a string", lambda v: isinstance(v, str)),
    "coverage": (
        "a map of domain -> one number (or null) per layer",
        lambda v: isinstance(v, dict) and all(isinstance(k, str) and _number_list(x) for k, x in v.items()),
    ),
    "profile_digest": ("a string", lambda v: isinstance(v, str)),
    "source_model": ("an object, or a path (AI2's files)", lambda v: isinstance(v, (dict, str))),
    "tool_version": ("a string", lambda v: isinstance(v, str)),
}


def is_plan_file(path: Path) -> bool:
    """A JSON object with the plan's key: a file `--overwrite` may replace with a plan."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and PLAN_KEY in data


@dataclass
class Plan:
    experts_kept_per_layer: Kept
    keep: str | None = None  # the request as given: "0.125", "16", or None for a hand-written plan
    method: str | None = None
    budget: str | None = None
    combine: str | None = None
    domains: list[str] = field(default_factory=list)
    seed: int | None = None
    within: str | None = None  # digest of the parent plan the selection was restricted to
    coverage: dict[str, list[float | None]] = field(default_factory=dict)
    profile_digest: str | None = None
    source_model: dict[str, Any] | None = None
    tool_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of a loaded file, kept as they were

    # ---- derived ------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.experts_kept_per_layer)

    def kept_counts(self) -> list[int | None]:
        return [None if ids is None else len(ids) for ids in self.experts_kept_per_layer]

    def index_map(self) -> list[dict[int, int] | None]:
        return [None if ids is None else {old: new for new, old in enumerate(ids)} for ids in self.experts_kept_per_layer]

    # ---- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update(
            {
                "format": FORMAT,
                PLAN_KEY: self.experts_kept_per_layer,
                "num_experts_kept": self.kept_counts(),
                "index_map": [None if m is None else {str(k): v for k, v in m.items()} for m in self.index_map()],
                "keep": self.keep,
                "method": self.method,
                "budget": self.budget,
                "combine": self.combine,
                "domains": self.domains,
                "seed": self.seed,
                "within": self.within,
                "coverage": self.coverage,
                "profile_digest": self.profile_digest,
                "source_model": self.source_model,
                "tool_version": self.tool_version,
            }
        )
        return data

    def to_json(self) -> str:
        return dumps(self.to_dict())

    def save(self, path: str | Path, *, overwrite: bool = True) -> Path:
        """Write atomically under the file's lock; an existing file is replaced only if it is a plan too,
        and only with `overwrite` (the CLI's --overwrite; the library replaces its own plans by default)."""
        return write_output(
            path,
            lambda f: f.write(self.to_json().encode()),
            overwrite=overwrite,
            recognise=is_plan_file,
            what="a plan file",
            error=PlanError,
        )

    @classmethod
    def from_dict(cls, data: Any, where: str = "plan") -> Plan:
        if not isinstance(data, dict) or PLAN_KEY not in data:
            raise PlanError(f"{where} has no {PLAN_KEY!r} (one list of kept expert ids per layer, null for dense layers)")
        kept = data[PLAN_KEY]
        if not isinstance(kept, list):
            raise PlanError(f"{where}: {PLAN_KEY!r} must be a list with one entry per layer")
        layers: Kept = []
        for i, ids in enumerate(kept):
            if ids is None:
                layers.append(None)
                continue
            if not isinstance(ids, list) or not all(isinstance(e, int) and not isinstance(e, bool) for e in ids):
                raise PlanError(f"{where}: layer {i} of {PLAN_KEY!r} must be a list of integer expert ids or null, got {ids!r}")
            layers.append(list(ids))
        known = {f for f in cls.__dataclass_fields__ if f not in ("experts_kept_per_layer", "extra")}
        derived = {"format", "num_experts_kept", "index_map", "extraction", PLAN_KEY}  # recomputed, or per output
        values = {k: data[k] for k in known if k in data and data[k] is not None}
        for key, value in values.items():
            expected, holds = FIELD_CHECKS[key]
            if not holds(value):
                raise PlanError(f"{where}: field {key!r} must be {expected}, got {value!r}"[:300])
        if "keep" in values:
            values["keep"] = str(values["keep"])
        if isinstance(values.get("source_model"), str):  # AI2's pruning_metadata.json names the model by path
            values["source_model"] = {"path": values["source_model"]}
        extra = {k: v for k, v in data.items() if k not in known and k not in derived}
        try:
            return cls(experts_kept_per_layer=layers, extra=extra, **values)
        except TypeError as exc:
            raise PlanError(f"{where}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path, *, hint: str = "pass a plan file") -> Plan:
        """A plan file, or the manifest of a build folder; `hint` ends the message for a folder without one."""
        path = Path(path)
        if path.is_dir():
            for name in ("emo_prune.json", "pruning_metadata.json"):
                if (path / name).exists():
                    return cls.load(path / name)
            raise PlanError(f"{path} is a folder without emo_prune.json or pruning_metadata.json; {hint}")
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise PlanError(f"plan file not found: {path}") from exc
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise PlanError(f"plan file {path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, where=str(path))


def dumps(data: Any, indent: int = 0) -> str:
    """JSON with 2-space indents, but one line per layer: lists of numbers and {id: id} maps stay inline."""
    return _dumps(data, indent) + ("\n" if indent == 0 else "")


def _dumps(data: Any, indent: int) -> str:
    pad, inner = " " * indent, " " * (indent + 2)
    id_map = isinstance(data, dict) and all(str(k).isdigit() and not isinstance(v, (dict, list)) for k, v in data.items())
    if isinstance(data, dict) and data and not id_map:
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, indent + 2)}" for k, v in data.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(data, list) and data and any(isinstance(v, (dict, list)) for v in data):
        return "[\n" + ",\n".join(inner + _dumps(v, indent + 2) for v in data) + "\n" + pad + "]"
    return json.dumps(data, separators=(", ", ": "))


def canonical_order(layout: LayerLayout, ids: list[int]) -> list[int]:
    """Routed ids ascending, then the fixed (shared / always-active) ids ascending."""
    fixed = set(layout.fixed_ids)
    return sorted(e for e in ids if e not in fixed) + sorted(e for e in ids if e in fixed)


def validate_plan(plan: Plan, arch: MoEArchitecture, where: str = "plan") -> Kept:
    """Check `plan` against a model; returns the kept ids per layer in canonical order.

    Refused: wrong number of layers, an entry for a dense layer or none for an MoE layer, ids out of
    range or repeated, a fixed expert dropped, fewer experts than the layer's top-k, and per-layer
    counts on a family whose config cannot express them.
    """
    layouts = arch.layouts
    if plan.num_layers != len(layouts):
        raise PlanError(f"{where} lists {plan.num_layers} layers, but the model has {len(layouts)}")
    kept: Kept = []
    for layout, ids in zip(layouts, plan.experts_kept_per_layer):
        i, E = layout.index, layout.num_experts
        if layout.is_dense:
            if ids:
                raise PlanError(f"{where}: layer {i} is a dense MLP layer; its entry must be null")
            kept.append(None)
            continue
        if ids is None:
            raise PlanError(f"{where}: layer {i} is an MoE layer with {E} experts; its entry must list the experts to keep")
        bad = [e for e in ids if not 0 <= e < E]
        if bad:
            raise PlanError(f"{where}: layer {i} names expert {bad[0]}, out of range 0..{E - 1}")
        held = set(ids)  # linear: a plan may list any number of ids (192,000 must not take minutes)
        if len(held) != len(ids):
            repeated = min(e for e, n in Counter(ids).items() if n > 1)
            raise PlanError(f"{where}: layer {i} lists expert {repeated} more than once")
        missing = [e for e in layout.fixed_ids if e not in held]
        if missing:
            raise PlanError(
                f"{where}: layer {i} drops expert {missing[0]}, a shared / always-active expert every token uses; keep it"
            )
        if len(ids) < layout.top_k:
            raise PlanError(
                f"{where}: layer {i} keeps {len(ids)} experts, fewer than its top-k {layout.top_k}; keep at least {layout.top_k}"
            )
        kept.append(canonical_order(layout, ids))
    counts = {len(ids) for ids in kept if ids is not None}
    if len(counts) > 1 and not arch.family.supports_per_layer_counts:
        raise PlanError(
            f"{where} keeps different numbers of experts per layer ({sorted(counts)}), which a {arch.family.name} "
            f"config cannot express (one expert count for all layers); use a uniform budget"
        )
    return kept
