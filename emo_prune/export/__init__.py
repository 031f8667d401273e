"""Export builds to other runtimes: GGUF for llama.cpp (and what runs on it: ollama, LM Studio).

  arch.py       the llama.cpp side of each family (gguf_archs.json)
  check.py      what GGUF can carry; refusals with reasons (also `--target gguf`)
  tensors.py    GGUF tensor names, shapes, permutations, read lazily
  metadata.py   hyperparameters and provenance keys
  tokenizer.py  the vocab keys (GPT-2-style byte-level BPE only)
  quantize.py   ggml types per tensor; llama.cpp's k-quants
  writer.py     export_gguf: streamed, atomic
  reference.py  a torch forward computed from a GGUF file alone (tests)
  llamacpp.py   logits and bits per byte measured in llama.cpp (llama-cpp-python)
"""

from emo_prune.export.check import GgufLayout, check_gguf_target, gguf_layout
from emo_prune.export.quantize import DTYPES
from emo_prune.export.writer import ExportResult, export_gguf

FORMATS = ("gguf",)

__all__ = ["DTYPES", "FORMATS", "ExportResult", "GgufLayout", "check_gguf_target", "export_gguf", "gguf_layout"]
