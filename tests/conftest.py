"""Session-wide test setup.

TRITON_INTERPRET is read when a kernel is decorated, so it must be set before anything imports
`emo_prune_kernels` (kernels.md): here, before any test module is collected.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
