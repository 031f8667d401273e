"""The model's tokenizer as GGUF vocab keys, for the tokenizers llama.cpp reproduces token for token.

Exported (`tokenizer.ggml.model = gpt2`), no normalizer, byte-level BPE split by:
  gpt-2   GPT-2's regex (the ByteLevel pre-tokenizer with use_regex): emo-prune's own tokenizers
          (emo_prune.testing.tokenizer_training) and GPT-2-style models
  dbrx    cl100k's regex (a Split with it, then ByteLevel without regex); llama.cpp's `dbrx` pre-type
          runs the same regex
Both are checked token for token against llama.cpp's tokenizer in tests/export. Refused with a clear
message: everything else (the real OLMoE / Qwen / Mixtral tokenizers use other regexes, normalizers or
SentencePiece, which llama.cpp identifies by a hash of known tokenizers that this exporter does not carry). A vocab shorter than the embedding is padded with unused tokens, as
convert_hf_to_gguf.py does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, TokenType

from emo_prune.errors import ExportError
from emo_prune.io.model_files import read_model_bytes
from emo_prune.io.paths import contained_path

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class GgufVocab:
    pre: str  # llama.cpp pre-tokenizer name
    tokens: list[str]
    types: list[int]
    merges: list[str]
    eos: int | None
    bos: int | None
    pad: int | None
    add_bos: bool


# cl100k's split regex as tokenizers writes it (what llama.cpp's `dbrx` pre-type runs, case folded by hand)
CL100K = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def _byte_level(pre: dict[str, Any], regex: bool) -> bool:
    return pre.get("type") == "ByteLevel" and bool(pre.get("use_regex", True)) == regex and not pre.get("add_prefix_space", False)


def pre_tokenizer_name(data: dict[str, Any]) -> str | None:
    """llama.cpp's pre-tokenizer name for a tokenizer.json, or None when this exporter cannot match it."""
    if (data.get("model") or {}).get("type") != "BPE" or data.get("normalizer") is not None:
        return None
    pre = data.get("pre_tokenizer") or {}
    if _byte_level(pre, regex=True):
        return "gpt-2"
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    if len(steps) == 2 and _byte_level(steps[1], regex=False):
        split = steps[0]
        if (
            split.get("type") == "Split"
            and (split.get("pattern") or {}).get("Regex") == CL100K
            and split.get("behavior") == "Isolated"
            and not split.get("invert", False)
        ):
            return "dbrx"
    return None


def _special_id(value: Any, vocab: dict[str, int]) -> int | None:
    if isinstance(value, dict):
        value = value.get("content")
    return vocab.get(value) if isinstance(value, str) else None


def read_vocab(model_dir: Path, vocab_size: int, config: dict[str, Any]) -> GgufVocab:
    path = contained_path(model_dir, TOKENIZER_FILE, "tokenizer")
    if not path.exists():
        raise ExportError(f"{model_dir} has no {TOKENIZER_FILE}: a GGUF file carries its tokenizer; save one with the model")
    try:  # a regular file inside the folder, as every loader reads it (io.model_files)
        data = json.loads(read_model_bytes(model_dir, TOKENIZER_FILE, "tokenizer"))
    except (ValueError, RecursionError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from exc
    pre_name = pre_tokenizer_name(data)
    if pre_name is None:
        model = (data.get("model") or {}).get("type")
        pre = (data.get("pre_tokenizer") or {}).get("type")
        raise ExportError(
            f"tokenizer {path} ({model}, pre-tokenizer {pre}) is not byte-level BPE with GPT-2's or cl100k's split, "
            f"the kinds this exporter writes exactly; convert that model's tokenizer with llama.cpp's convert_hf_to_gguf.py"
        )
    vocab: dict[str, int] = dict(data["model"]["vocab"])
    added = {t["id"]: t for t in data.get("added_tokens", [])}
    for token_id, token in added.items():
        vocab.setdefault(token["content"], token_id)
    size = max(vocab_size, max(vocab.values()) + 1)
    if size > vocab_size:
        raise ExportError(f"{path} has {size} tokens but the model embeds {vocab_size}; the tokenizer does not belong to it")
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [int(TokenType.UNUSED)] * size
    for text, token_id in vocab.items():
        tokens[token_id] = text
        token = added.get(token_id)
        if token is None:
            types[token_id] = int(TokenType.NORMAL)
        else:
            types[token_id] = int(TokenType.CONTROL if token.get("special") else TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"].get("merges", [])]
    side = contained_path(model_dir, "tokenizer_config.json", "tokenizer config")
    extra: dict[str, Any] = {}
    if side.exists():
        try:
            extra = json.loads(read_model_bytes(model_dir, side.name, "tokenizer config"))
        except (ValueError, RecursionError):
            extra = {}
    extra = extra if isinstance(extra, dict) else {}

    def special(name: str, config_key: str) -> int | None:
        found = _special_id(extra.get(name), vocab)
        value = config.get(config_key)
        if found is None and isinstance(value, int):
            found = value
        return found

    bos = special("bos_token", "bos_token_id")
    return GgufVocab(
        pre=pre_name,
        tokens=tokens,
        types=types,
        merges=merges,
        eos=special("eos_token", "eos_token_id"),
        bos=bos,
        pad=special("pad_token", "pad_token_id"),
        add_bos=bool(extra.get("add_bos_token", False)) and bos is not None,
    )


def write_vocab(writer: GGUFWriter, vocab: GgufVocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    if vocab.eos is not None:
        writer.add_eos_token_id(vocab.eos)
    if vocab.bos is not None:
        writer.add_bos_token_id(vocab.bos)
    if vocab.pad is not None:
        writer.add_pad_token_id(vocab.pad)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(False)
