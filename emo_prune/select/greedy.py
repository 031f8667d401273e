"""AI2's greedy selection: layer by layer, each scored on the model whose earlier layers are pruned.

For MoE layer l (in order): run the calibration documents through the model with the experts already
dropped in layers < l masked (`masked_experts`: router logits -inf, no weights rewritten), stop the
forward at layer l's router, and take the mean router probability per expert over each domain's
non-padding tokens (EMO: routed and shared blocks softmaxed separately, as `router_probabilities`).
`choose(layer, scores, weights)` turns those scores into the kept ids; then layer l is masked too.

Memory: the whole-model path loads the model (float32) once; layer l costs one forward through
layers 0..l, so the selection costs about L/2 full forwards of the calibration set. The layerwise
path (`greedy_select_layerwise`, chosen by the memory plan or --layerwise) holds one layer at a time
(`emo_prune.models.stream`) and the activations of the calibration set between two layers: each
layer runs twice (score, then masked to its choice), 2 layer forwards per layer instead of L/2.
Both paths compute the same floats on CPU, so they choose the same experts.

Nesting: scores of layer l depend on what layers < l keep, which depends on the budget, so greedy
sets at two budgets need not be nested. Pass `within` (select --within PLAN) to choose inside a larger
plan's set when nesting is required.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emo_prune import events
from emo_prune.arch import MoEArchitecture
from emo_prune.errors import CalibrationError
from emo_prune.io import Checkpoint
from emo_prune.memory import Workload, plan_memory
from emo_prune.models.stop import run_until
from emo_prune.models.stream import LayerStream
from emo_prune.routing import router_probabilities
from emo_prune.select.greedy_settings import DocumentLike, GreedySettings
from emo_prune.select.masking import masked_experts, router_module
from emo_prune.select.plan import Kept

#: (layer index, {domain: mean probability [E_l] float64}, {domain: token count}) -> kept original ids
Chooser = Callable[[int, dict[str, torch.Tensor], dict[str, float]], list[int]]

#: the progress task of a greedy selection: one step per MoE layer (minutes each on a large model)
PROGRESS_LABEL = "greedy selection, layer by layer"


def encode(tokenizer: Any, documents: Sequence[DocumentLike], seq_len: int) -> list[tuple[list[int], str]]:
    """Token ids per document by the profiler's rule (the tokenizer's own special tokens, then EOS), so
    greedy scores the same text `mass` does; a document is cut to its first `seq_len` tokens."""
    from emo_prune.calib import Document
    from emo_prune.profile.batches import tokenize_documents

    docs = [Document(text=d.text, domain=d.domain, source="") for d in documents if d.text]
    encoded = [(doc.ids[:seq_len], doc.domain) for doc in tokenize_documents(docs, tokenizer) if doc.ids]
    if not encoded:
        raise CalibrationError("greedy selection got no calibration tokens (all documents are empty)")
    return encoded


def _batches(encoded: list[tuple[list[int], str]], domains: list[str], batch_size: int, pad_id: int):  # noqa: ANN202
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)  # [B, S]
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        domain = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (ids, name) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
            domain[row] = domains.index(name)
        yield input_ids, mask, domain


Batches = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # (input_ids [B, S], mask [B, S], domain [B, S])


def prepare(tokenizer: Any, documents: Sequence[DocumentLike], settings: GreedySettings) -> tuple[list[str], Batches]:
    """(domain names, padded batches) of the calibration documents, as both greedy paths read them."""
    domains = sorted({doc.domain for doc in documents})
    encoded = encode(tokenizer, documents, settings.seq_len)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return domains, list(_batches(encoded, domains, settings.batch_size, pad_id))


class _Tally:
    """Router probability sums per domain over non-padding tokens, from a hook that then stops the forward."""

    def __init__(self, arch: MoEArchitecture, layer: int, domains: list[str]):
        layout = arch.layouts[layer]
        self.spec = layout.routing_spec()
        self.domains = domains
        self.sums = torch.zeros(len(domains), layout.num_experts, dtype=torch.float64)  # [D, E]
        self.tokens = torch.zeros(len(domains), dtype=torch.float64)  # [D]

    def run(self, router: nn.Module, batches: Batches, forward: Callable[[int], Any]) -> None:
        """forward(b) runs batch b up to (at least) `router`; its logits are tallied, the rest never runs."""
        for b, (_, mask, domain) in enumerate(batches):
            logits = run_until(router, lambda: forward(b))  # [T, E], T = B*S
            probs = router_probabilities(logits, self.spec).double().cpu()  # [T, E]
            valid = mask.reshape(-1).bool()  # [T]
            onehot = torch.nn.functional.one_hot(domain.reshape(-1)[valid], len(self.domains)).double()  # [t, D]
            self.sums.add_(onehot.T @ probs[valid])
            self.tokens.add_(onehot.sum(0))

    def means(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        means = {d: self.sums[i] / max(float(self.tokens[i]), 1.0) for i, d in enumerate(self.domains)}
        return means, {d: float(self.tokens[i]) for i, d in enumerate(self.domains)}


@torch.inference_mode()
def layer_scores(
    model: nn.Module,
    arch: MoEArchitecture,
    layer: int,
    batches: Batches,
    domains: list[str],
    kept: Kept,
    device: str = "cpu",
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Mean router probability per expert of `layer` per domain, with layers < `layer` masked to `kept`."""
    tally = _Tally(arch, layer, domains)

    def forward(b: int) -> None:
        input_ids, mask, _ = batches[b]
        model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False)

    with masked_experts(model, arch, kept, layers=set(range(layer))):
        tally.run(router_module(model, arch, layer), batches, forward)
    return tally.means()


def greedy_select(
    model: nn.Module,
    tokenizer: Any,
    arch: MoEArchitecture,
    documents: Sequence[DocumentLike],
    choose: Chooser,
    settings: GreedySettings = GreedySettings(),
) -> Kept:
    """Kept original ids per layer, chosen layer by layer on the progressively pruned (whole) model."""
    domains, batches = prepare(tokenizer, documents, settings)
    kept: Kept = [None] * arch.num_layers
    with events.progress() as progress:
        task = progress.add_task(PROGRESS_LABEL, total=len(arch.moe_layers))
        for layout in arch.moe_layers:
            scores, weights = layer_scores(model, arch, layout.index, batches, domains, kept, settings.device)
            kept[layout.index] = choose(layout.index, scores, weights)
            progress.advance(task)
    return kept


@torch.inference_mode()
def greedy_select_layerwise(
    checkpoint: Checkpoint,
    tokenizer: Any,
    documents: Sequence[DocumentLike],
    choose: Chooser,
    settings: GreedySettings = GreedySettings(),
) -> Kept:
    """`greedy_select` with one layer in memory: the activations of every batch go through layer l once
    to score its router, then (l masked to its choice) once more to feed layer l + 1."""
    arch = checkpoint.architecture
    domains, batches = prepare(tokenizer, documents, settings)
    stream = LayerStream(checkpoint, torch.float32, torch.device(settings.device))
    with stream.module(stream.embed_name()) as embed:
        hidden = [embed(input_ids.to(settings.device)) for input_ids, _, _ in batches]  # [B, S, H] each
    kept: Kept = [None] * arch.num_layers
    with events.progress() as progress:
        task = progress.add_task(PROGRESS_LABEL, total=len(arch.moe_layers))
        for layout in arch.layouts:
            i = layout.index
            with stream.layer(i):
                if not layout.is_dense:
                    tally = _Tally(arch, i, domains)
                    tally.run(router_module(stream.model, arch, i), batches, lambda b: stream.run(hidden[b], batches[b][1]))
                    kept[i] = choose(i, *tally.means())
                    progress.advance(task)
                if i + 1 < arch.num_layers:
                    with masked_experts(stream.model, arch, kept, layers={i}):
                        hidden = [stream.run(h, mask) for h, (_, mask, _) in zip(hidden, batches)]
    return kept


def run_greedy(
    model_dir: str | Path,
    documents: Sequence[DocumentLike],
    choose: Chooser,
    settings: GreedySettings = GreedySettings(),
) -> Kept:
    """Greedy selection on the model in `model_dir`, whole or layer by layer as the memory plan decides
    (its one-line note says when it goes layer by layer); progress: one task over the MoE layers."""
    from dataclasses import replace

    from emo_prune.models.loading import load_tokenizer, load_whole, resolve_device

    settings = replace(settings, device=resolve_device(settings.device))  # `--device cuda` without CUDA: one line, first
    checkpoint = Checkpoint.open(model_dir)
    tokenizer = load_tokenizer(checkpoint.path)
    _, batches = prepare(tokenizer, documents, settings)
    work = Workload(
        rows=max(ids.shape[0] for ids, _, _ in batches),
        seq_len=max(ids.shape[1] for ids, _, _ in batches),
        kept_tokens=sum(ids.numel() for ids, _, _ in batches),
    )
    choice = plan_memory("greedy selection", [checkpoint], torch.float32, work, settings.memory, settings.device, lean=True)
    if choice.path == "layerwise":
        return greedy_select_layerwise(checkpoint, tokenizer, documents, choose, settings)
    model = load_whole(checkpoint.path, device=settings.device)
    return greedy_select(model, tokenizer, checkpoint.architecture, documents, choose, settings)
