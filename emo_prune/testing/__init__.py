"""Tiny, deterministic, real checkpoints of every supported family, for tests and the quickstart."""

from emo_prune.testing.factory import FAMILIES, TinySpec, build_tiny_model, tiny_config, tiny_model_zoo, write_tiny_model
from emo_prune.testing.tokenizer import seed_tokenizer, train_tokenizer

__all__ = [
    "FAMILIES",
    "TinySpec",
    "build_tiny_model",
    "seed_tokenizer",
    "tiny_config",
    "tiny_model_zoo",
    "train_tokenizer",
    "write_tiny_model",
]
