"""`select`: from a profile (or calibration documents) and a budget to a plan.

Per MoE layer: rank the routed candidates (all routed experts, or those a `within` plan keeps) by
the method's scores combined over the domains (`scores.rank_routed`), decide how many routed experts
the layer keeps (`budget.routed_counts`), keep the fixed experts plus that prefix of the ranking.
Because every layer keeps a prefix of one ranking that does not depend on the budget, subsets made
from one profile are nested (12.5% inside 25%) for mass, frequency, reap and random, under both
budgets (easy_ep too; coverage ranks by its own greedy order, `emo_prune.select.token_cover`). Greedy is
the exception (see `emo_prune.select.greedy`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from emo_prune.arch import LayerLayout, MoEArchitecture
from emo_prune.errors import CalibrationError, PlanError, ProfileError
from emo_prune.io import Checkpoint, model_identity
from emo_prune.profile.report import coverage
from emo_prune.profile.store import Profile
from emo_prune.select.budget import BUDGETS, routed_counts
from emo_prune.select.greedy_settings import DocumentLike, GreedySettings
from emo_prune.select.keep import Keep, keep_counts
from emo_prune.select.plan import Kept, Plan, canonical_order, validate_plan
from emo_prune.select.scores import COMBINES, METHODS, PROFILE_METHODS, profile_scores, random_scores, rank_routed
from emo_prune.select.token_cover import coverage_ranking, token_sets


@dataclass(frozen=True)
class SelectOptions:
    keep: str
    domains: tuple[str, ...] = ()
    method: str = "mass"
    budget: str = "uniform"
    combine: str = "union"
    seed: int = 0
    within: Plan | None = None  # choose inside this (larger) plan's experts
    calib: tuple[str, ...] = ()  # greedy: calibration sources (default: the ones the profile records)
    greedy: GreedySettings = field(default_factory=GreedySettings)


def with_default_domain(options: SelectOptions, profile: Profile | None) -> SelectOptions:
    """No domain named and a profile of exactly one domain: that domain."""
    if not options.domains and profile is not None and len(profile.domains) == 1:
        return replace(options, domains=tuple(profile.domains))
    return options


def check_selection(arch: MoEArchitecture, options: SelectOptions) -> None:
    """What a selection can be refused for without a profile (names, budget vs family, the keep count
    vs top-k): callers run it before they profile, so an impossible budget costs no profiling."""
    for value, known, flag in (
        (options.method, METHODS, "--method"),
        (options.budget, BUDGETS, "--budget"),
        (options.combine, COMBINES, "--combine"),
    ):
        if value not in known:
            raise PlanError(f"unknown {flag} {value!r} (known: {', '.join(known)})")
    if options.budget == "global" and not arch.family.supports_per_layer_counts:
        raise PlanError(
            f"--budget global gives layers different expert counts, which a {arch.family.name} config cannot express; "
            f"use --budget uniform (per-layer counts need a family like emo with num_experts_per_layer)"
        )
    if options.budget == "global" and options.method == "greedy":
        raise PlanError("--method greedy picks layer by layer and needs --budget uniform")
    keep_counts(Keep.parse(options.keep), arch.layouts)


def _check_options(arch: MoEArchitecture, options: SelectOptions, profile: Profile | None) -> None:
    check_selection(arch, options)
    if options.method in PROFILE_METHODS:
        if profile is None:
            raise PlanError(f"--method {options.method} reads a profile; pass --profile (made by `emo-prune profile`)")
        if not options.domains:
            raise PlanError(f"pass at least one --domain (the profile has: {', '.join(sorted(profile.domains))})")
        for domain in options.domains:
            profile.require_domain(domain)
    if profile is not None and list(profile.layouts) != list(arch.layouts):
        raise ProfileError("the profile's per-layer layout differs from the model's; profile this model first")


def _candidates(arch: MoEArchitecture, counts: list[int | None], within: Plan | None) -> list[list[int] | None]:
    if within is None:
        return [None if lay.is_dense else list(lay.routed_ids) for lay in arch.layouts]
    parent = validate_plan(within, arch, where="--within plan")
    result: list[list[int] | None] = []
    for lay, count, ids in zip(arch.layouts, counts, parent):
        if ids is None:
            result.append(None)
            continue
        if count is not None and count > len(ids):
            raise PlanError(f"--within plan keeps only {len(ids)} experts in layer {lay.index}; cannot select {count} inside it")
        result.append([e for e in ids if e in set(lay.routed_ids)])
    return result


def _keep_prefix(layout: LayerLayout, ranking: list[int], n: int) -> list[int]:
    return canonical_order(layout, list(layout.fixed_ids) + ranking[:n])


def select_experts(
    arch: MoEArchitecture,
    options: SelectOptions,
    profile: Profile | None = None,
    *,
    model_dir: str | Path | None = None,
    documents: Sequence[DocumentLike] | None = None,
) -> Plan:
    """A plan for `arch`; greedy also needs `model_dir` and `documents` (it reports through `emo_prune.events`)."""
    options = with_default_domain(options, profile)
    _check_options(arch, options, profile)
    keep = Keep.parse(options.keep)
    counts = keep_counts(keep, arch.layouts)
    candidates = _candidates(arch, counts, options.within)
    if options.method == "greedy":
        kept = _greedy(arch, options, counts, candidates, model_dir, documents)
    else:
        kept = _from_scores(arch, options, profile, counts, candidates)
    plan = Plan(
        experts_kept_per_layer=kept,
        keep=keep.text,
        method=options.method,
        budget=options.budget,
        combine=options.combine if len(options.domains) > 1 and options.method != "coverage" else None,
        domains=list(options.domains),
        seed=options.seed if options.method == "random" else None,
        within=plan_digest(options.within) if options.within is not None else None,
        profile_digest=profile.digest() if profile is not None else None,
        source_model=profile.model if profile is not None else None,
    )
    if profile is not None:
        plan.coverage = {d: coverage(profile, d, kept) for d in options.domains if d in profile.domains}
    validate_plan(plan, arch)
    return plan


def layer_rankings(
    layouts: Sequence[LayerLayout],
    options: SelectOptions,
    profile: Profile | None,
    candidates: list[list[int] | None],
) -> tuple[list[list[int] | None], list[list[float] | None]]:
    """Per layer: the candidates best first and their values (None for dense layers), for every
    method but greedy. A kept prefix of each is the plan; `plan export --format vllm-ascend` writes them."""
    rankings: list[list[int] | None] = []
    values: list[list[float] | None] = []
    for lay, ids in zip(layouts, candidates):
        if ids is None:
            rankings.append(None)
            values.append(None)
            continue
        if options.method == "coverage":  # one greedy order over every domain's sampled tokens
            assert profile is not None
            ranking, vals = coverage_ranking(lay, ids, *token_sets(profile, list(options.domains), lay.index))
            rankings.append(ranking)
            values.append(vals)
            continue
        if options.method == "random":
            scores = {"random": random_scores(lay.num_experts, options.seed, lay.index)}
            weights = {"random": 1.0}
        else:
            assert profile is not None
            scores = {d: profile_scores(profile, d, options.method, lay.index) for d in options.domains}
            weights = {d: float(profile.domains[d].num_tokens) for d in options.domains}
        ranking, vals = rank_routed(ids, scores, weights, options.combine)
        rankings.append(ranking)
        values.append(vals)
    return rankings, values


def _from_scores(
    arch: MoEArchitecture,
    options: SelectOptions,
    profile: Profile | None,
    counts: list[int | None],
    candidates: list[list[int] | None],
) -> Kept:
    rankings, values = layer_rankings(arch.layouts, options, profile, candidates)
    routed = routed_counts(list(arch.layouts), counts, rankings, values, options.budget)
    return [
        None if ranking is None or n is None else _keep_prefix(lay, ranking, n)
        for lay, ranking, n in zip(arch.layouts, rankings, routed)
    ]


def _greedy(
    arch: MoEArchitecture,
    options: SelectOptions,
    counts: list[int | None],
    candidates: list[list[int] | None],
    model_dir: str | Path | None,
    documents: Sequence[DocumentLike] | None,
) -> Kept:
    if model_dir is None or not documents:
        raise CalibrationError("--method greedy needs the model and calibration documents (--calib SOURCE)")
    if options.domains:
        documents = [d for d in documents if d.domain in options.domains]
        missing = sorted(set(options.domains) - {d.domain for d in documents})
        if missing:
            raise CalibrationError(f"no calibration documents for domain {missing[0]!r}")

    from emo_prune.select.greedy import run_greedy  # torch: only greedy runs the model

    def choose(layer: int, scores: Mapping[str, Any], weights: dict[str, float]) -> list[int]:
        lay = arch.layouts[layer]
        arrays = {domain: np.asarray(s) for domain, s in scores.items()}  # greedy's float64 [E] torch means
        ranking, _ = rank_routed(candidates[layer] or [], arrays, weights, options.combine)
        return _keep_prefix(lay, ranking, counts[layer] - len(lay.fixed_ids))  # type: ignore[operator]

    return run_greedy(model_dir, documents, choose, options.greedy)


def plan_digest(plan: Plan) -> str:
    return hashlib.sha256(repr(plan.experts_kept_per_layer).encode()).hexdigest()


def greedy_documents(options: SelectOptions, profile: Profile | None) -> list[DocumentLike]:
    """Calibration documents for greedy: --calib sources, else the sources the profile was made from."""
    sources = list(options.calib)
    seed = options.seed
    if not sources and profile is not None:
        wanted = set(options.domains) or set(profile.domains)
        sources = sorted({c["source"] for c in profile.calibration if c.get("source") and wanted & _entry_domains(c)})
        seed = int(profile.settings.get("seed", seed))
    if not sources:
        raise CalibrationError(
            "--method greedy needs calibration text: pass --calib SOURCE (or a profile that records its sources)"
        )
    try:
        from emo_prune.calib import load_documents
    except ImportError as exc:
        raise CalibrationError(f"calibration loading is not available in this installation ({exc})") from exc
    return list(load_documents(sources, list(options.domains) or None, seed=seed))


def _entry_domains(entry: dict) -> set[str]:
    """Domains of one profile calibration entry ({"domains": {name: count}} or {"domain": name})."""
    return set(entry.get("domains") or {}) | ({entry["domain"]} if entry.get("domain") else set())


def make_plan(
    model_dir: str | Path,
    options: SelectOptions,
    profile_path: str | Path | None = None,
) -> Plan:
    """Open the model and the profile, check they belong together, select; the plan records both."""
    checkpoint = Checkpoint.open(model_dir)
    arch = checkpoint.architecture
    profile = Profile.load(profile_path) if profile_path is not None else None
    options = with_default_domain(options, profile)
    _check_options(arch, options, profile)  # cheap refusals first: hashing and loading documents take time
    identity = model_identity(checkpoint)
    if profile is not None:
        profile.check_model(identity, where=str(model_dir))
    documents = greedy_documents(options, profile) if options.method == "greedy" else None
    plan = select_experts(arch, options, profile, model_dir=model_dir, documents=documents)
    plan.source_model = identity
    return plan
