"""`emo-prune generate MODEL_DIR --prompt TEXT | --prompt-file PATH [--pool 0.125]`: streamed greedy generation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import DeviceOption, DtypeOption, JsonFlag, ModelDir, ThreadsOption, model_path
from emo_prune.cli.pool_options import PoolFlags
from emo_prune.common.text import inert
from emo_prune.common.units import megabytes


def generate_command(
    model_dir: ModelDir,
    prompt: Annotated[str | None, typer.Option("--prompt", help="The text to continue.", show_default=False)] = None,
    prompt_file: Annotated[
        Path | None,
        typer.Option("--prompt-file", help="Read the text to continue from this UTF-8 file (long prompts).", show_default=False),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Tokens to generate at most.")] = 64,
    truncate_prompt: Annotated[
        bool,
        typer.Option(
            "--truncate-prompt",
            help="Keep the prompt's last tokens that fit the model's context with --max-new-tokens (a warning says "
            "how many were dropped) instead of refusing a prompt that is too long.",
        ),
    ] = False,
    pools: PoolFlags = PoolFlags(),
    dtype: DtypeOption = "float32",
    device: DeviceOption = "cpu",
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Continue a prompt greedily, streaming the text.

    With --pool, the prompt chooses each layer's experts (the rest stay on disk); prints the pools,
    the cache and the memory. Without, a build made by `extract` prints how much of the full
    router's mass the prompt puts on the experts it kept, and warns when the prompt looks outside
    the build's domain. A prompt must fit the model's context (max_position_embeddings) together with
    --max-new-tokens.

    Example: emo-prune generate builtin:emo-small --prompt "def add(a, b):" --max-new-tokens 16
    """
    from emo_prune.serve.generate import generate

    text = prompt_text(prompt, prompt_file)
    model_dir = model_path(model_dir)
    stream = None if out.json_mode or out.quiet else _stream
    result = generate(
        model_dir, text, pool=pools.settings(), max_new_tokens=max_new_tokens, dtype=dtype, device=device,
        coverage_warn=pools.coverage_warn, on_text=stream, truncate_prompt=truncate_prompt,
    )  # fmt: skip
    if stream is not None:
        typer.echo("")
    if result.low_coverage:
        out.warn(
            f"the prompt puts {result.coverage['coverage']:.0%} of the full router's mass on the build's experts "
            f"(below {result.coverage_warn:.1%}, {result.coverage_warn / result.calibration_coverage:.2f} x the "
            f"{result.calibration_coverage:.1%} of its calibration text): it looks outside the domain {Path(model_dir).name} was built for"
        )
    out.result(result.to_dict(), lambda: render(result.to_dict()))


def prompt_text(prompt: str | None, prompt_file: Path | None) -> str:
    """The prompt: --prompt's text or --prompt-file's (UTF-8 checked), exactly one of them."""
    from emo_prune.errors import PromptError
    from emo_prune.io.text import read_text

    if (prompt is None) == (prompt_file is None):
        raise PromptError("give the prompt with --prompt TEXT or --prompt-file PATH (one of them)")
    return prompt if prompt_file is None else read_text(prompt_file, PromptError, "--prompt-file")


def _stream(piece: str) -> None:
    # the model's text: its newlines and tabs are the answer, any other control character (a tokenizer
    # file's vocabulary can hold ESC) is shown escaped
    typer.echo(inert(piece, markup=False, keep="\n\t"), nl=False)


def render(result: dict[str, Any]) -> None:
    from rich.table import Table

    pool = result["pool"]
    if pool is not None:
        where = f"the {len(pool['neighbours'])} indexed requests nearest the prompt" if pool.get("neighbours") else "the prompt"
        table = Table(title=f"pools chosen from {where} ({result['prompt_tokens']} prompt tokens)")
        if pool.get("neighbours"):
            out.print(neighbours_line(pool["neighbours"]))
        for col in ("layer", "experts", "context mass on pool"):
            table.add_column(col)
        for layer, ids in pool["pools"].items():
            table.add_row(layer, " ".join(map(str, ids)), f"{pool['context_coverage'][layer]:.1%}")
        out.print(table)
        cache = pool["cache"]
        rate = "-" if cache["hit_rate"] is None else f"{cache['hit_rate']:.0%}"
        out.print(
            f"experts resident for this request {megabytes(pool['resident_expert_bytes'], 2)}; cache hits {cache['hits']}, "
            f"misses {cache['misses']} ({rate}), read {megabytes(cache['bytes_read'], 2)}; re-selections {pool['reselections']}"
        )
    if result["coverage"] is not None:
        out.print(f"coverage of the prompt by the build's experts: {result['coverage']['coverage']:.1%}")
    rate = lambda n, s: f"{n / s:.1f} tokens/s" if s > 0 else "-"  # noqa: E731
    out.print(
        f"prefill {result['prompt_tokens']} tokens ({rate(result['prompt_tokens'], result['prefill_seconds'])}), "
        f"decode {result['new_tokens']} ({rate(result['new_tokens'], result['decode_seconds'])}); "
        f"process RSS {megabytes(result['rss_bytes'], 0)}"
    )


def neighbours_line(neighbours: list[dict[str, Any]]) -> str:
    """`--pool-index`: which indexed requests the pools came from."""
    from collections import Counter

    domains = ", ".join(f"{inert(name)} {n}" for name, n in Counter(n["domain"] for n in neighbours).most_common())
    similarity = [n["similarity"] for n in neighbours]
    return (
        f"pools from the router mass of {len(neighbours)} requests of the index ({domains}; "
        f"similarity of their contexts to the prompt {min(similarity):.3f}-{max(similarity):.3f})"
    )
