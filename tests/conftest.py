"""Session-wide test setup.

TRITON_INTERPRET is read when a kernel is decorated, so it must be set before anything imports
`emo_prune_kernels` (docs/kernels.md): here, before any test module is collected.
"""

import os
import tempfile

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Shard digests and materialized built-in models go to a throwaway cache, never ~/.cache.
os.environ["EMO_PRUNE_CACHE"] = tempfile.mkdtemp(prefix="emo-prune-test-cache-")

import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """tiny(family, storage=..., seed=..., **sizes) -> a written checkpoint; each distinct request is written
    once per session (the one tiny-model factory of the suite). Read-only: copy a folder to change it."""
    from emo_prune.testing import write_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    made: dict[str, Path] = {}

    def make(family: str = "emo", storage: str = "per_expert", seed: int = 0, **sizes: Any) -> Path:
        key = json.dumps([family, storage, seed, sizes], sort_keys=True, default=str)
        if key not in made:
            made[key] = write_tiny_model(root / f"m{len(made)}-{family}", family, seed=seed, storage=storage, **sizes)
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_zoo(tiny) -> dict[str, Path]:
    """One default tiny checkpoint per supported family (per-expert layout), shared by all tests. Read-only."""
    from emo_prune.testing.factory import FAMILIES

    return {family: tiny(family) for family in FAMILIES}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matmuls: with 2 OpenMP threads on a shared 2-core machine each op can cost ~10 ms of spinning."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli():
    """cli(*args) -> click Result of `emo-prune args...`, with the output sink reset between calls."""
    from typer.testing import CliRunner

    from emo_prune.cli import app
    from emo_prune.cli.console import out

    runner = CliRunner()

    def invoke(*args):
        out.json_mode = out.quiet = out.debug = False
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture
def captured_notes():
    """The notes the library gives through emo_prune.events while the test runs, in order (a list the test
    reads); the listener before it is restored afterwards. Warnings and progress go on as without it."""
    from emo_prune import events

    notes: list[str] = []

    class Capture(events.LoggingListener):
        def note(self, message: str) -> None:
            notes.append(message)

    previous = events.listen(Capture())
    yield notes
    events.listen(previous)
