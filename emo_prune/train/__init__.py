"""Training small EMO-format MoE models (EMO document-pool objective vs standard top-k) on offline text."""

from emo_prune.train.tokenizer import train_tokenizer
from emo_prune.train.trainer import TrainConfig, train

__all__ = ["TrainConfig", "train", "train_tokenizer"]
