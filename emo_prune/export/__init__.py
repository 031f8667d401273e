"""Export builds to other runtimes: GGUF for llama.cpp (and what runs on it: ollama, LM Studio).

  formats.py    format and dtype names (light: the CLI and recipes read them)
  arch.py       the llama.cpp side of each family (gguf_archs.json)
  check.py      what GGUF can carry; refusals with reasons (also `--target gguf`)
  tensors.py    GGUF tensor names, shapes, permutations, read lazily
  metadata.py   hyperparameters and provenance keys
  tokenizer.py  the vocab keys (GPT-2-style byte-level BPE only)
  quantize.py   ggml types per tensor; llama.cpp's k-quants
  writer.py     export_gguf: streamed, atomic
  reference.py  a torch forward computed from a GGUF file alone (tests)
  llamacpp.py   a GGUF file run in llama.cpp: its logits (lm-eval scores: emo_prune.eval.llamacpp_lm)
  llama_cpp_binding.py  llama-cpp-python imported (one-line error when missing), its C log silenced

The names below load their modules on first use, so `import emo_prune.export.formats` stays light.
"""

from importlib import import_module
from typing import Any

from emo_prune.export.formats import DTYPES, FORMATS

_LAZY = {
    "ExportResult": "emo_prune.export.writer",
    "export_gguf": "emo_prune.export.writer",
    "GgufLayout": "emo_prune.export.check",
    "check_gguf_target": "emo_prune.export.check",
    "check_target": "emo_prune.export.check",
    "gguf_layout": "emo_prune.export.check",
}

__all__ = ["DTYPES", "FORMATS", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emo_prune.export' has no attribute {name!r}")
