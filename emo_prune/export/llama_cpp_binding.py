"""llama-cpp-python, the binding of llama.cpp that GGUF quantization and runs go through: imported with
a one-line error naming the pip extra when it is missing, and its C-side log silenced."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from emo_prune.errors import ExportError

EXTRA = "edge"  # the pip extra that installs llama-cpp-python


def llama_cpp_module() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ExportError(
            f"this needs llama-cpp-python, which is not installed: pip install 'emo-prune[{EXTRA}]' "
            f"(it builds llama.cpp from source once, about 30 min on 2 cores; pip caches the wheel)"
        ) from exc
    return llama_cpp


@contextlib.contextmanager
def quiet_stderr():
    """llama.cpp prints its load log from C to fd 2 even with verbose=False for some messages."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
