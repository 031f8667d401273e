"""A real byte-level BPE tokenizer, trained locally with `tokenizers` (nothing is downloaded).

Byte-level BPE encodes any text (unknown characters fall back to bytes), so calibration and eval code
paths see a real tokenizer. Deterministic: the same training text and vocab size give the same
tokenizer. Special tokens: <|endoftext|> (id 0, EOS, documents are delimited by it) and <|pad|> (id 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"

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


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` and wrap it for transformers."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=4096,
    )


def seed_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """The tokenizer of factory-made tiny models."""
    return train_tokenizer([SEED_TEXT] * 4, vocab_size=vocab_size)


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    tokenizer.save_pretrained(str(out_dir))
