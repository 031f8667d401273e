"""`emo-prune bench MODEL_DIR`: time the model (and one MoE layer) under each experts implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from emo_prune.cli.console import out
from emo_prune.cli.options import DeviceOption, DtypeOption, JsonFlag, ModelDir, ThreadsOption, model_path
from emo_prune.common.constants import BENCH_IMPLEMENTATIONS as IMPLEMENTATIONS
from emo_prune.errors import RuntimeSetupError

if TYPE_CHECKING:
    from emo_prune.bench import BenchReport

TokensOption = Annotated[str, typer.Option("--tokens", help="Comma-separated token counts per forward.")]
ImplOption = Annotated[
    str, typer.Option("--impl", help=f"Comma-separated experts implementations ({', '.join(IMPLEMENTATIONS)}).")
]


def parse_tokens(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise RuntimeSetupError(f"--tokens {text!r}: give positive integers separated by commas, e.g. 1,8,64")
    return counts


def parse_impls(text: str) -> list[str]:
    impls = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(impls) - set(IMPLEMENTATIONS))
    if not impls or unknown:
        raise RuntimeSetupError(f"--impl {text!r}: choose among {', '.join(IMPLEMENTATIONS)}")
    return impls


def bench_command(
    model_dir: ModelDir,
    tokens: TokensOption = "1,8,64,512",
    impl: ImplOption = ",".join(IMPLEMENTATIONS),
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    threads: ThreadsOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Milliseconds, tokens/s, GB/s and TFLOP/s of the model and of one MoE layer per experts implementation.

    For eager, grouped_mm, batched_mm, emo_cpu and emo_triton (those that run here), as ratios to eager.

    Example: emo-prune bench builtin:emo-small --tokens 1,64
    """
    from emo_prune.bench import bench_model
    from emo_prune.models.loading import resolve_device

    model_dir = model_path(model_dir)
    counts, impls = parse_tokens(tokens), parse_impls(impl)
    device = resolve_device(device)
    out.note(f"benchmarking {model_dir} on {device} ...")
    report = bench_model(model_dir, tokens=counts, impls=impls, device=device, dtype=dtype)
    out.result(report.to_dict(), lambda: render(report))


def render(report: BenchReport) -> None:
    from emo_prune.bench import bench_table

    bw = report.read_bandwidth_gb_s
    out.print(f"measured read bandwidth: {bw:.1f} GB/s" if bw else "read bandwidth not measured")
    out.print(bench_table(report), drop=("best ms", "TFLOP/s", "% of read BW", "GB/s"))
