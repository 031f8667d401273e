"""Pool mode of the native EMO model: each request runs within its own pool of experts per MoE layer.

Shapes: B batch (1 in pool mode: one request), S sequence, T = B*S tokens, H hidden, E experts of a
layer, k experts per token, P pool size (fixed experts included).

A request's prefill chooses the pools layer by layer inside one forward: at MoE layer l the router's
logits of the context tokens are summed into the layer's mass (`selection.context_mass`), the pool is
the top-P of it (`selection.choose_pool`), its experts are fetched from the `ExpertStore`, and only then
are the tokens routed: top-k within the pool (the router's logits of experts outside it at -inf, so the
routing IS `emo_prune.routing.route` of the masked logits) and computed with the pool's weights. Layer
l+1 sees hidden states that only pool experts produced, so the prefill never runs an expert outside its
pool, and no expert weight outside a pool is ever in memory (the model is loaded without experts).

After the prefill the pools are fixed (default) or re-chosen every N decoded tokens from the mass of
every token fed so far (context and tokens already decoded, never the one being predicted).

Draft (`draft`: D > 0 tokens): a context says little about the experts its answer will route to when it
is short and unlike the answer (a math question: 15 tokens of words, then a worked answer of digits).
So the prefill's pools first decode D tokens greedily (the model's own guess at the answer, from the
context alone), the pools are re-chosen from the mass of the context and the draft, the draft is
discarded and the context is prefilled again within the new pools; `draft_rounds` R repeats this,
each draft decoded within the pools the previous one chose (its mass adds up: context + drafts). The draft depends only on the
context: the pools still never see a token that is scored or generated for the answer.

Index (`pool_index`, `emo_prune.serve.index_file`): at the first MoE layer of the prefill the context's mean
router probabilities are the key, the K nearest calibration contexts of the index are looked up, and
every layer's pool is the top-P of the mean router mass of THEIR documents (context and answer, or the
answers alone: `PoolIndex.mass_of`) in place of the context's own mass, still chosen layer by layer
inside the one prefill. The key depends only on the context. With a
draft as well, the draft is decoded within the index's pools and the pools are re-chosen from
`index_weight` x the neighbours' mean mass + the draft's mean mass per token: the index says
which kind of answer this is, the draft what this answer looks like.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

from emo_prune.arch import LayerLayout
from emo_prune.errors import PlanError
from emo_prune.io import Checkpoint
from emo_prune.models.emo.modeling_emo import EmoTopKRouter
from emo_prune.routing import route
from emo_prune.serve.index_file import Neighbour, PoolIndex, request_key
from emo_prune.serve.selection import choose_pool, context_mass, pool_sizes
from emo_prune.serve.settings import PoolSettings
from emo_prune.serve.store import ExpertStore, ExpertWeights, StoreStats


@dataclass
class LayerPool:
    ids: tuple[int, ...]  # sorted expert ids, fixed ones included
    member: torch.Tensor  # [E] bool
    experts: dict[int, ExpertWeights]  # the request's references to its pool's weights


@dataclass
class RequestPools:
    """One request's pools, their history and its expert calls."""

    selecting: bool = True  # the next forward chooses the pools (the prefill)
    mass: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [E] float64, every token fed so far (^pool_power)
    context_mass: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [E], the prefill's tokens (plain p: reports)
    layers: dict[int, LayerPool] = field(default_factory=dict)
    history: list[dict[int, tuple[int, ...]]] = field(default_factory=list)  # pools after each (re)selection
    calls: Counter = field(default_factory=Counter)  # (layer, expert) -> tokens it computed
    tokens_fed: int = 0
    stats_before: StoreStats = field(default_factory=StoreStats)
    prior: dict[int, torch.Tensor] | None = None  # layer -> [E]: the index neighbours' mean mass (pool_index)
    neighbours: list[Neighbour] = field(default_factory=list)

    @property
    def pools(self) -> dict[int, tuple[int, ...]]:
        return {layer: pool.ids for layer, pool in self.layers.items()}

    def resident_bytes(self) -> int:
        """Bytes of the expert weights this request holds (the union of its pools' experts now)."""
        return sum(w.nbytes for pool in self.layers.values() for w in pool.experts.values())


class PoolMoeBlock(nn.Module):
    """The MoE block of one layer in pool mode: the router is resident, experts come from the store."""

    def __init__(self, config: Any, layout: LayerLayout, runtime: PoolRuntime):
        super().__init__()
        self.layout = layout
        self.spec = layout.routing_spec()
        self.gate = EmoTopKRouter(config, layout)  # same parameter name as the dense model: mlp.gate.weight
        self.act_fn = ACT2FN[config.hidden_act]
        self._runtime = [runtime]  # a list: not a submodule

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, seq, hidden = hidden_states.shape
        if batch != 1:
            raise PlanError(f"pool mode runs one request per forward (got a batch of {batch})")
        runtime = self._runtime[0]
        request = runtime.request
        if request is None:
            raise PlanError("pool mode: call runtime.begin() before a forward")
        index = self.layout.index
        flat = hidden_states.reshape(-1, hidden)  # [T, H]
        logits = F.linear(flat, self.gate.weight)  # [T, E]
        plain, mass = context_mass(logits, self.layout, runtime.settings.pool_power)  # [E] each
        request.mass[index] = request.mass.get(index, 0) + mass
        if request.selecting:
            request.context_mass[index] = request.context_mass.get(index, 0) + plain
            if runtime.index is not None and index == runtime.index.key_layer:
                runtime.look_up(request, request_key(request.context_mass[index], self.layout))
            chosen_by = request.mass[index] if request.prior is None else request.prior[index]
            runtime.set_pool(request, self.layout, choose_pool(chosen_by, self.layout, runtime.sizes[index]))
        pool = request.layers[index]
        weights, ids = route(logits.masked_fill(~pool.member, float("-inf")), self.spec)  # [T, k] each
        return self._experts(flat, ids, weights.to(flat.dtype), pool, request).reshape(batch, seq, hidden)

    def _experts(
        self, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, pool: LayerPool, request: RequestPools
    ) -> torch.Tensor:
        output = torch.zeros_like(x)  # [T, H]
        for expert in torch.unique(ids).tolist():
            w = pool.experts.get(expert)
            if w is None:  # routing within the pool makes this impossible; a bug if it happens
                raise AssertionError(f"layer {self.layout.index}: expert {expert} routed outside the pool {pool.ids}")
            token_idx, slot = torch.where(ids == expert)
            gate, up = F.linear(x[token_idx], w.gate_up).chunk(2, dim=-1)  # [t, I] each
            y = F.linear(self.act_fn(gate) * up, w.down) * weights[token_idx, slot, None]  # [t, H]
            output.index_add_(0, token_idx, y.to(output.dtype))
            request.calls[(self.layout.index, expert)] += len(token_idx)
        return output


class PoolRuntime:
    """A native EMO model in pool mode: attention, routers, norms and embeddings resident; experts on demand."""

    def __init__(
        self, model: nn.Module, checkpoint: Checkpoint, store: ExpertStore, settings: PoolSettings, index: PoolIndex | None = None
    ):
        self.model = model
        self.checkpoint = checkpoint
        self.store = store
        self.settings = settings
        self.index = index
        self.layouts = list(checkpoint.architecture.layouts)
        self.sizes = pool_sizes(settings.pool, self.layouts)
        self.request: RequestPools | None = None

    # ---- one request --------------------------------------------------------------------------
    def begin(self) -> RequestPools:
        """Start a request: its next forward (the prefill) chooses the pools."""
        self.request = RequestPools(stats_before=StoreStats(**self.store.stats.__dict__))
        return self.request

    def set_pool(self, request: RequestPools, layout: LayerLayout, ids: tuple[int, ...]) -> None:
        member = torch.zeros(layout.num_experts, dtype=torch.bool, device=self.store.device)
        member[list(ids)] = True
        experts = {e: self.store.get(layout.index, e) for e in ids}
        request.layers[layout.index] = LayerPool(ids=ids, member=member, experts=experts)

    def look_up(self, request: RequestPools, key: torch.Tensor) -> None:
        """The request's prior from the index: the mean mass of the K entries nearest to `key` [R]."""
        request.neighbours = self.index.nearest(key, self.settings.pool_neighbours)
        request.prior = self.index.prior(request.neighbours)

    def end_prefill(self) -> None:
        request = self.request
        request.selecting = False
        request.history.append(request.pools)

    def reselect(self) -> None:
        """Re-choose every layer's pool from the mass of all tokens fed so far."""
        request = self.request
        for layout in self.layouts:
            if not layout.is_dense:
                chosen_by = request.mass[layout.index] if request.prior is None else request.prior[layout.index]
                self.set_pool(request, layout, choose_pool(chosen_by, layout, self.sizes[layout.index]))
        request.history.append(request.pools)

    @torch.no_grad()
    def forward(self, ids: list[int], cache: Any) -> torch.Tensor:
        """Feed `ids` (one request's next tokens) through the model with the KV cache: logits [len(ids), V]."""
        x = torch.tensor([ids], dtype=torch.long, device=self.store.device)
        logits = self.model(input_ids=x, past_key_values=cache, use_cache=True).logits[0]
        self.request.tokens_fed += len(ids)
        return logits

    def new_cache(self) -> Any:
        from transformers.cache_utils import DynamicCache

        return DynamicCache(config=self.model.config)

    @torch.no_grad()
    def prefill(self, context: list[int]) -> tuple[Any, torch.Tensor]:
        """Start a request on `context`: choose its pools (and draft, if set). Returns (KV cache, last logits [V])."""
        request = self.begin()
        cache = self.new_cache()
        logits = self.forward(context, cache)[-1]
        self.end_prefill()
        eos = _eos_ids(self.model.config)
        neighbours_mass = request.prior  # layer -> [E] with an index, else None
        for _ in range(self.settings.draft_rounds if self.settings.draft else 0):
            before, drafted = dict(request.mass), 0
            for _ in range(self.settings.draft):
                token = int(logits.argmax())
                if token in eos:
                    break
                logits = self.forward([token], cache)[-1]
                drafted += 1
            if neighbours_mass is not None and drafted:  # the index's mass, refined by the draft's
                weight = self.settings.index_weight
                request.prior = {l: weight * m + (request.mass[l] - before[l]) / drafted for l, m in neighbours_mass.items()}
            mass = dict(request.mass)  # context + draft: later re-selections start from it (measured: better)
            self.reselect()  # from the context and the draft (with an index: from request.prior)
            request.history = request.history[-1:]  # the pools the request runs in
            cache = self.new_cache()
            logits = self.forward(context, cache)[-1]  # the context again, within the new pools
            request.mass, request.tokens_fed = mass, len(context)
        return cache, logits

    @torch.no_grad()
    def score(self, context: list[int], continuation: list[int]) -> tuple[torch.Tensor, bool, RequestReport]:
        """Log-probabilities [n] of `continuation` after `context`, whether it is the greedy one, the report.

        The pools come from `context` alone (the prefill); with `reselect_every` N the continuation is fed N
        tokens at a time, re-choosing after each chunk exactly as generation would after N decoded tokens.
        """
        if not context or not continuation:
            raise PlanError("pool mode scores a continuation after a non-empty context")
        cache, first = self.prefill(context)  # first [V]: predicts continuation[0]
        pieces, fed = [first[None]], continuation[:-1]
        step = self.settings.reselect_every or max(len(fed), 1)
        for start in range(0, len(fed), step):
            pieces.append(self.forward(fed[start : start + step], cache))
            if self.settings.reselect_every is not None and start + step < len(fed):
                self.reselect()
        logits = torch.cat(pieces, dim=0).float()  # [n, V]
        logprobs = torch.log_softmax(logits, dim=-1)
        target = torch.tensor(continuation, device=logits.device)
        greedy = bool((logits.argmax(dim=-1) == target).all())
        return logprobs.gather(1, target[:, None])[:, 0], greedy, self.report(len(context))

    @torch.no_grad()
    def generate(self, prompt: list[int], max_new_tokens: int, stop_ids: set[int] = frozenset(), on_token=None):
        """Greedy decoding within the prompt's pools; `on_token(id)` streams. Returns (new ids, report)."""
        if not prompt:
            raise PlanError("pool mode needs a prompt to choose the pools from")
        cache, logits = self.prefill(prompt)
        new: list[int] = []
        for step in range(max_new_tokens):
            token = int(logits.argmax())
            new.append(token)
            if on_token is not None:
                on_token(token)
            if token in stop_ids or step == max_new_tokens - 1:
                break
            logits = self.forward([token], cache)[-1]
            if self.settings.reselect_every is not None and (step + 1) % self.settings.reselect_every == 0:
                self.reselect()
        return new, self.report(len(prompt))

    def report(self, context_tokens: int) -> RequestReport:
        request = self.request
        coverage = {}
        for layout in self.layouts:
            mass = request.context_mass.get(layout.index)
            if mass is None:
                continue
            routed = [e for e in request.layers[layout.index].ids if e not in layout.fixed_ids]
            total = mass[list(layout.routed_ids)].sum()  # the routed block: the fixed experts get every token
            coverage[layout.index] = float(mass[routed].sum() / total) if total > 0 else 1.0
        return RequestReport(
            pools=request.history[0] if request.history else request.pools,
            reselections=request.history[1:],
            context_tokens=context_tokens,
            tokens_fed=request.tokens_fed,
            store=self.store.stats.since(request.stats_before),
            resident_expert_bytes=request.resident_bytes(),
            context_coverage=coverage,
            calls=dict(request.calls),
            neighbours=list(request.neighbours),
        )


@dataclass
class RequestReport:
    pools: dict[int, tuple[int, ...]]  # layer -> expert ids chosen by the prefill
    reselections: list[dict[int, tuple[int, ...]]]  # pools after each re-selection
    context_tokens: int
    tokens_fed: int
    store: StoreStats  # this request's cache hits, misses, bytes read
    resident_expert_bytes: int  # expert weights the request holds at its end
    context_coverage: dict[int, float]  # layer -> share of the context's router mass on the pool
    calls: dict[tuple[int, int], int]  # (layer, expert) -> tokens computed
    neighbours: list[Neighbour] = field(default_factory=list)  # the index entries the pools came from (pool_index)

    def to_dict(self) -> dict[str, Any]:
        neighbours = {
            "neighbours": [{"entry": n.entry, "domain": n.domain, "similarity": round(n.similarity, 4)} for n in self.neighbours]
        }
        return {
            "pools": {str(k): list(v) for k, v in self.pools.items()},
            "reselections": len(self.reselections),
            "context_tokens": self.context_tokens,
            "tokens_fed": self.tokens_fed,
            "cache": self.store.to_dict(),
            "resident_expert_bytes": self.resident_expert_bytes,
            "context_coverage": {str(k): round(v, 4) for k, v in self.context_coverage.items()},
            **(neighbours if self.neighbours else {}),
        }


def load_pool_runtime(
    model_dir: str | Path, settings: PoolSettings, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> PoolRuntime:
    """The model of `model_dir` in pool mode: every weight but the experts read now; experts on demand."""
    from emo_prune.models.weights import assign, decoder_of, layer_state, load_heads, meta_model

    checkpoint = Checkpoint.open(model_dir)
    arch = checkpoint.architecture
    if arch.model_type != "emo":
        raise PlanError(f"pool mode runs the native EMO model; {checkpoint.path} is a {arch.model_type} model")
    torch_device = torch.device(device)
    store = ExpertStore(
        checkpoint, dtype=dtype, device=torch_device, budget_bytes=_budget(settings.cache_budget), policy=settings.cache_policy
    )
    model = meta_model(checkpoint, dtype, torch_device)
    index = PoolIndex.load(settings.pool_index, checkpoint) if settings.pool_index is not None else None
    runtime = PoolRuntime(model, checkpoint, store, settings, index)
    for layout in arch.layouts:
        layer = decoder_of(model).layers[layout.index]
        if not layout.is_dense:
            with torch.device("meta"):
                layer.mlp = PoolMoeBlock(model.config, layout, runtime)
        assign(layer, layer_state(checkpoint, arch, layout.index, dtype, torch_device, experts=False), f"layer {layout.index}")
    load_heads(model, checkpoint, dtype, torch_device)
    model.eval()
    return runtime


def _eos_ids(config: Any) -> set[int]:
    eos = getattr(config, "eos_token_id", None)
    return set() if eos is None else {eos} if isinstance(eos, int) else set(eos)


def _budget(value: str | int | None) -> int | None:
    from emo_prune.io.sizes import parse_size

    return None if value is None else parse_size(value, "--cache-budget")
