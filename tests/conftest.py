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

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One default tiny checkpoint per supported family (per-expert layout), shared by all tests.

    Treat as read-only: tests that modify a model folder copy it first.
    """
    from emo_prune.testing import tiny_model_zoo

    return tiny_model_zoo(tmp_path_factory.mktemp("zoo"))
