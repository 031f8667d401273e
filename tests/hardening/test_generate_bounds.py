"""`generate`'s bounds: the prompt and its new tokens fit the model's context (or --truncate-prompt cuts it,
with a warning), --prompt-file is UTF-8 checked; --device cuda without CUDA and a size of 0 are one line
naming the flag."""

from __future__ import annotations

import json
import os

import pytest
import torch
from hardening_helpers import one_line_error, snapshot

CONTEXT = 512  # max_position_embeddings of the tiny models (emo_prune/testing/factory.py)


@pytest.fixture(scope="module")
def long_prompt(source_model) -> tuple[str, int]:
    """A prompt longer than the context, and its token count."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source_model))
    assert json.loads((source_model / "config.json").read_text())["max_position_embeddings"] == CONTEXT
    text = " ".join(f"word{i % 97} + {i}" for i in range(400))
    n = len(tokenizer(text)["input_ids"])
    assert n > CONTEXT
    return text, n


def test_a_prompt_past_the_context_is_refused_with_both_numbers(cli, source_model, long_prompt, tmp_path) -> None:
    text, n = long_prompt
    before = snapshot(tmp_path)
    result = cli("generate", source_model, "--prompt", text, "--max-new-tokens", 8)
    one_line_error(
        result, "prompt error:", f"the prompt is {n} tokens", "--max-new-tokens is 8", f"context of {CONTEXT} positions",
        "max_position_embeddings", "--truncate-prompt",
    )  # fmt: skip
    assert snapshot(tmp_path) == before


def test_the_refusal_comes_before_any_forward(source_model, long_prompt, monkeypatch) -> None:
    from emo_prune.errors import PromptError
    from emo_prune.serve.generate import Generator

    generator = Generator(source_model)
    monkeypatch.setattr(generator.model, "forward", lambda *a, **k: pytest.fail("a forward ran"))
    with pytest.raises(PromptError, match="--max-new-tokens is 4"):
        generator.generate(long_prompt[0], max_new_tokens=4)


@pytest.mark.parametrize("pool", [None, "0.5"])
def test_truncate_prompt_keeps_the_last_tokens_that_fit(cli, source_model, long_prompt, pool) -> None:
    text, n = long_prompt
    result = cli(
        "--json",
        "generate",
        source_model,
        *(["--pool", pool] if pool else []),
        "--prompt",
        text,
        "--max-new-tokens",
        8,
        "--truncate-prompt",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["prompt_tokens"] == CONTEXT - 8 and 1 <= data["new_tokens"] <= 8
    assert f"kept its last {CONTEXT - 8}" in result.stderr and f"dropped the first {n - CONTEXT + 8}" in result.stderr


def test_new_tokens_that_fill_the_context_leave_no_room(cli, source_model) -> None:
    result = cli("generate", source_model, "--prompt", "hello", "--max-new-tokens", CONTEXT, "--truncate-prompt")
    one_line_error(result, "prompt error:", f"--max-new-tokens {CONTEXT} leaves no room", f"below {CONTEXT}")


def test_a_prompt_file_gives_the_same_text_as_prompt(cli, source_model, tmp_path) -> None:
    prompt = "def add(a, b):\n    return"
    (tmp_path / "prompt.txt").write_text(prompt, encoding="utf-8")
    by_flag = cli("--json", "generate", source_model, "--prompt", prompt, "--max-new-tokens", 4)
    by_file = cli("--json", "generate", source_model, "--prompt-file", tmp_path / "prompt.txt", "--max-new-tokens", 4)
    assert by_flag.exit_code == by_file.exit_code == 0, (by_flag.output, by_file.output)
    first, second = json.loads(by_flag.stdout), json.loads(by_file.stdout)
    assert (first["text"], first["prompt_tokens"]) == (second["text"], second["prompt_tokens"])


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: (d / "bad.txt").write_bytes(b"def add(a, b):\n\xc3\x28") and d / "bad.txt", ["not UTF-8", "offset 15"]),
        (lambda d: d / "missing.txt", ["--prompt-file not found"]),
        (lambda d: d, ["is a folder"]),
        (_fifo, ["not a regular file"]),  # a read would block forever
    ],
)
def test_a_bad_prompt_file_is_one_line_naming_it(cli, source_model, tmp_path, make, says) -> None:
    path = make(tmp_path)
    # names, not hashes: hashing would read the FIFO, which blocks
    before = sorted(p.name for p in tmp_path.iterdir())
    line = one_line_error(cli("generate", source_model, "--prompt-file", path, "--max-new-tokens", 2), "prompt error:", *says)
    assert str(path) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("args", [[], ["--prompt", "x", "--prompt-file", "p.txt"]])
def test_prompt_and_prompt_file_exclude_each_other(cli, source_model, args) -> None:
    one_line_error(cli("generate", source_model, *args), "prompt error:", "--prompt TEXT or --prompt-file PATH")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    "command",
    [
        ["generate", "{model}", "--prompt", "hi", "--device", "cuda"],
        ["generate", "{model}", "--pool", "0.5", "--prompt", "hi", "--device", "cuda"],
        ["profile", "{model}", "--calib", "builtin:math:calib", "--device", "cuda", "--out", "{tmp}/p.safetensors"],
        ["profile", "{model}", "--domain", "math", "--device", "cuda", "--out", "{tmp}/p.safetensors"],  # no note first
        ["eval", "{model}", "--tasks", "emo_ppl_math", "--device", "cuda", "--out", "{tmp}/r.json"],
        ["bench", "{model}", "--device", "cuda"],
        [
            "select",
            "{model}",
            "--keep",
            "0.5",
            "--method",
            "greedy",
            "--calib",
            "builtin:math:calib",
            "--device",
            "cuda",
            "--out",
            "{tmp}/plan.json",
        ],
        ["extract", "{model}", "--keep", "0.5", "--domain", "math", "--device", "cuda", "--out", "{tmp}/build"],
    ],
    ids=lambda c: " ".join(c[:1] + c[2:3] + c[-2:-1]),
)
def test_device_cuda_without_cuda_is_one_line(cli, source_model, tmp_path, command) -> None:
    args = [a.format(model=source_model, tmp=tmp_path) for a in command]
    before = snapshot(tmp_path)
    one_line_error(cli(*args), "runtime error:", "--device cuda asked for CUDA", "use --device cpu")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("section", ["calibration", "eval"])
def test_a_recipe_device_without_cuda_is_one_line_before_the_run_folder(cli, source_model, tmp_path, section) -> None:
    import yaml

    recipe = {"name": "r", "model": str(source_model), "calibration": {"sources": ["builtin:math:calib"]}, "budgets": [0.5]}
    recipe.setdefault(section, {})["device"] = "cuda"
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    before = snapshot(tmp_path)
    one_line_error(
        cli("run", tmp_path / "r.yaml", "--out", tmp_path / "run"),
        "runtime error:",
        f"recipe {section}.device:",
        "asked for CUDA",
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (
            ["extract", "{model}", "--keep", "0.5", "--domain", "math", "--max-shard-size", "0", "--out", "{tmp}/build"],
            "--max-shard-size '0'",
        ),
        (["generate", "{model}", "--pool", "0.5", "--cache-budget", "0", "--prompt", "hi"], "--cache-budget '0'"),
    ],
)
def test_a_size_of_zero_names_its_flag(cli, source_model, tmp_path, args, flag) -> None:
    before = snapshot(tmp_path)
    one_line_error(cli(*[a.format(model=source_model, tmp=tmp_path) for a in args]), flag, "must be positive")
    assert snapshot(tmp_path) == before
