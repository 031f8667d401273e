"""Training: the small bundled EMO-format models from scratch (EMO document-pool objective vs standard top-k,
`trainer.py`), and fine-tuning builds and models (`finetune.finetune`, `merge_back.merge_back`; imported from
their modules, so importing this package does not load peft)."""

from emo_prune.testing.tokenizer_training import train_tokenizer
from emo_prune.train.trainer import TrainConfig, train

__all__ = ["TrainConfig", "train", "train_tokenizer"]
