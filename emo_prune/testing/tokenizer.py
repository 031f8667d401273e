"""The tokenizer of factory-made tiny models: byte-level BPE trained on a small fixed text."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedTokenizerFast

from emo_prune.testing.tokenizer_training import EOS_TOKEN, PAD_TOKEN, train_tokenizer

__all__ = ["EOS_TOKEN", "PAD_TOKEN", "SEED_TEXT", "save_tokenizer", "seed_tokenizer", "train_tokenizer"]

# A small, fixed mix of the three built-in domains (prose, Python code, arithmetic), enough for BPE
# merges that make tiny test models see realistic token streams.
SEED_TEXT = """
The quick brown fox jumps over the lazy dog. A model that routes each token to a few experts can be
pruned to the experts one domain needs. Emergent modularity means that groups of experts specialize:
some read code, some read mathematics, some read biomedical or legal prose. We measure how often each
expert is chosen, keep the ones that matter, and check that the smaller model still answers well.

def route(logits, top_k):
    probs = softmax(logits, dim=-1)
    weights, ids = probs.topk(top_k)
    return weights, ids

class Expert:
    def __init__(self, hidden, width):
        self.gate = Linear(hidden, width)
        self.up = Linear(hidden, width)
    def forward(self, x):
        return self.down(silu(self.gate(x)) * self.up(x))

for i in range(10):
    if i % 2 == 0:
        print(f"even {i}")
    else:
        print("odd", i)

Question: What is 17 + 25? Answer: 17 + 25 = 42.
Question: Solve 3x + 4 = 19. Answer: 3x = 15, so x = 5.
Question: What is 12 * 11? Answer: 12 * 11 = 132.
Question: Simplify (8 - 3) * 6. Answer: 8 - 3 = 5, and 5 * 6 = 30.
0 1 2 3 4 5 6 7 8 9 10 100 1000 + - * / = ( ) [ ] { } < > : ; , . ! ? ' " # @ _
"""


def seed_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """The tokenizer of factory-made tiny models."""
    return train_tokenizer([SEED_TEXT] * 4, vocab_size=vocab_size)


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    tokenizer.save_pretrained(str(out_dir))
