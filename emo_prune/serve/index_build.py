"""Building a pool index (`emo-prune pool-index`): calibration context -> answer pairs routed through the
whole model; the file it writes is `emo_prune.serve.index_file` (what an entry holds, and why, is there).

Shapes: N entries, S tokens of a pair, E experts of a layer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from emo_prune import events
from emo_prune.calib.pairs import text_pairs, tokenize_pair
from emo_prune.errors import PlanError
from emo_prune.io import Checkpoint
from emo_prune.serve.index_file import DEFAULT_POWER, MASS_OF, PoolIndex, request_key, router_fingerprint

# `pool-index` without --calib: the text the bundled models were trained on (every built-in corpus's
# `train` split: 5,415 pairs); the `calib` split stays for tuning, `heldout` for the benchmarks
DEFAULT_SOURCES = tuple(f"{d}=builtin:{d}:train" for d in ("code", "prose", "math"))


def build_index(
    model_dir: str | Path,
    sources: list[str],
    *,
    power: float = DEFAULT_POWER,
    mass_of: str = MASS_OF[0],
    max_pairs: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> PoolIndex:
    """An index of the context -> answer pairs of `sources` (calibration specs, as `profile --calib`),
    at most `max_pairs` per domain, routed through the whole model of `model_dir`."""
    from emo_prune.models.loading import load_tokenizer

    if not power > 0:
        raise PlanError(f"--power must be > 0 (got {power})")
    if mass_of not in MASS_OF:
        raise PlanError(f"--mass-of must be one of {', '.join(MASS_OF)} (got {mass_of!r})")
    tokenizer = load_tokenizer(Checkpoint.open(model_dir).path)
    pairs = tokenized_pairs(tokenizer, sources, seed=seed, max_pairs=max_pairs)
    if not pairs:
        raise PlanError(
            f"no context -> answer pair in {', '.join(sources)}: an index needs documents with a documented "
            "function, a '...\\nAnswer:' problem or at least two paragraphs, or JSONL records with 'context' and 'answer'"
        )
    return index_pairs(model_dir, pairs, power=power, mass_of=mass_of, dtype=dtype)


@dataclass(frozen=True)
class IndexPair:
    domain: str
    context: list[int]  # token ids
    answer: list[int]


def tokenized_pairs(tokenizer: Any, sources: list[str], *, seed: int = 0, max_pairs: int | None = None) -> list[IndexPair]:
    """The pairs of `text_pairs(sources)` tokenized (`tokenize_pair`), at most `max_pairs` per domain;
    a pair whose context or answer has no token is skipped."""
    pairs: list[IndexPair] = []
    per_domain: Counter = Counter()
    for domain, pair in text_pairs(sources, seed):
        if max_pairs is not None and per_domain[domain] >= max_pairs:
            continue
        context, answer = tokenize_pair(tokenizer, pair["context"], pair["answer"])
        if context and answer:
            pairs.append(IndexPair(domain, context, answer))
            per_domain[domain] += 1
    return pairs


@torch.no_grad()
def index_pairs(
    model_dir: str | Path,
    pairs: list[IndexPair],
    *,
    power: float = DEFAULT_POWER,
    mass_of: str = MASS_OF[0],
    dtype: torch.dtype = torch.float32,
) -> PoolIndex:
    """The index of tokenized `pairs`: each pair's context + answer fed through the WHOLE model in one
    forward (causal: the context's routing is what it would be alone), every MoE layer's router logits
    read by a forward hook. The whole model's fused experts make this ~6x faster than pool mode with
    every expert in the pool (tests/serve/test_pool_index.py checks the two agree). Progress: one "pool
    index" task over the pairs."""
    from emo_prune.models.weights import decoder_of, load_pretrained
    from emo_prune.serve.selection import context_mass

    checkpoint = Checkpoint.open(model_dir)
    if checkpoint.architecture.model_type != "emo":
        raise PlanError(
            f"a pool index is for pool mode, which runs the native EMO model; {checkpoint.path} is a {checkpoint.architecture.model_type} model"
        )
    model = load_pretrained(checkpoint.path, dtype)
    moe = [layout for layout in checkpoint.architecture.layouts if not layout.is_dense]
    logits: dict[int, torch.Tensor] = {}  # MoE layer -> [S, E] of the pair being fed
    for layout in moe:
        router = decoder_of(model).layers[layout.index].mlp.gate  # returns (logits [T, E], weights, ids)
        router.register_forward_hook(
            lambda module, args, output, layer=layout.index: logits.__setitem__(layer, output[0].reshape(-1, output[0].shape[-1]))
        )
    keys, values = [], {layout.index: [] for layout in moe}
    with events.progress() as progress:
        task = progress.add_task("pool index", total=len(pairs))
        for pair in pairs:
            model(input_ids=torch.tensor([pair.context + pair.answer]))
            n = len(pair.context)
            start = n if mass_of == "answer" else 0  # the first token an entry's value averages over
            for layout in moe:
                layer_logits = logits[layout.index]  # [S, E]
                if layout is moe[0]:
                    keys.append(request_key(context_mass(layer_logits[:n], layout)[0], layout))
                mass = context_mass(layer_logits[start:], layout, power)[1]  # [E], summed p^power: as pool mode sums it
                values[layout.index].append((mass / (len(layer_logits) - start)).float())
            progress.advance(task)
    return PoolIndex(
        key_layer=moe[0].index,
        keys=torch.stack(keys).float(),
        values={layer: torch.stack(rows) for layer, rows in values.items()},
        domains=tuple(pair.domain for pair in pairs),
        power=float(power),
        mass_of=mass_of,
        fingerprint=router_fingerprint(checkpoint),
    )
