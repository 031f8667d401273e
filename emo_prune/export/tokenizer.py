"""The model's tokenizer as GGUF vocab keys, for the tokenizers llama.cpp reproduces token for token.

Exported: byte-level BPE with GPT-2's pre-tokenizer (`tokenizer.ggml.model = gpt2`, `pre = gpt-2`), no
normalizer: what emo-prune's own tokenizers (emo_prune.train.tokenizer) and GPT-2-style models use.
Refused with a clear message: everything else (the real OLMoE / Qwen / Mixtral / EMO tokenizers use other
pre-tokenizer regexes or SentencePiece, which llama.cpp identifies by a hash of known tokenizers that this
exporter does not carry). A vocab shorter than the embedding is padded with unused tokens, as
convert_hf_to_gguf.py does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, TokenType

from emo_prune.errors import ExportError
from emo_prune.io.paths import contained_path

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class GgufVocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    eos: int | None
    bos: int | None
    pad: int | None
    add_bos: bool


def _is_gpt2_byte_level(data: dict[str, Any]) -> bool:
    pre = data.get("pre_tokenizer") or {}
    return (
        (data.get("model") or {}).get("type") == "BPE"
        and data.get("normalizer") is None
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
        and not pre.get("add_prefix_space", False)
    )


def _special_id(value: Any, vocab: dict[str, int]) -> int | None:
    if isinstance(value, dict):
        value = value.get("content")
    return vocab.get(value) if isinstance(value, str) else None


def read_vocab(model_dir: Path, vocab_size: int, config: dict[str, Any]) -> GgufVocab:
    path = contained_path(model_dir, TOKENIZER_FILE, "tokenizer")
    if not path.is_file():
        raise ExportError(f"{model_dir} has no {TOKENIZER_FILE}: a GGUF file carries its tokenizer; save one with the model")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from exc
    if not _is_gpt2_byte_level(data):
        model = (data.get("model") or {}).get("type")
        pre = (data.get("pre_tokenizer") or {}).get("type")
        raise ExportError(
            f"tokenizer {path} ({model}, pre-tokenizer {pre}) is not GPT-2-style byte-level BPE, the only kind this "
            f"exporter writes exactly; convert that model's tokenizer with llama.cpp's convert_hf_to_gguf.py"
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
    side = model_dir / "tokenizer_config.json"
    extra: dict[str, Any] = {}
    if side.is_file():
        try:
            extra = json.loads(side.read_text())
        except (OSError, ValueError):
            extra = {}

    def special(name: str, config_key: str) -> int | None:
        found = _special_id(extra.get(name), vocab)
        value = config.get(config_key)
        if found is None and isinstance(value, int):
            found = value
        return found

    bos = special("bos_token", "bos_token_id")
    return GgufVocab(
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
    writer.add_tokenizer_pre("gpt-2")
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
