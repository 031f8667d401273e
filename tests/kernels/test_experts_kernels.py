"""emo_triton (interpreted on CPU) and emo_cpu against the plain torch reference, on edge shapes."""

from __future__ import annotations

import pytest
import torch
from moe_cases import TOLERANCES, make_problem, torch_threads

from emo_prune.runtime import cpu_experts, experts_reference, triton_experts

DTYPES = [torch.float32, torch.bfloat16]  # bf16: the kernels upcast on load in the interpreter
SHAPES = [(3, 3), (12, 4), (16, 8)]  # (E, k): k == kept experts, E not a power of two, EMO-like 16/8


def reference(p) -> torch.Tensor:
    return experts_reference(p.x, p.stack(), p.ids, p.weights)


def run_triton(p, path: str = "auto") -> torch.Tensor:
    return triton_experts(p.x, p.stack(), p.ids, p.weights, path=path)


def run_cpu(p, lowp_gemm: str | None = None, threads: int = 2) -> torch.Tensor:
    with torch_threads(threads):
        return cpu_experts(p.x, p.stack(), p.ids, p.weights, lowp_gemm=lowp_gemm)


def assert_matches(got: torch.Tensor, p) -> None:
    assert got.shape == p.x.shape and got.dtype == p.x.dtype
    torch.testing.assert_close(got.float(), reference(p).float(), **TOLERANCES[p.x.dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("experts,top_k", SHAPES)
@pytest.mark.parametrize("tokens", [1, 33, 80])  # decode size, odd count, > one 16-row block per expert
def test_triton_auto_path(tokens: int, experts: int, top_k: int, dtype: torch.dtype) -> None:
    # 1 token takes the decode path, 33 and 80 the sorted grouped GEMMs
    p = make_problem(tokens, experts, top_k, dtype, seed=tokens)
    assert_matches(run_triton(p), p)


@pytest.mark.parametrize("threads", [1, 2])  # 2: products split over threads as bmm; 1: F.linear
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("experts,top_k", SHAPES)
@pytest.mark.parametrize("tokens", [1, 33, 80])
def test_cpu(tokens: int, experts: int, top_k: int, dtype: torch.dtype, threads: int) -> None:
    # 1 token: all-core matvecs; more: sorted groups, 1-row groups via matvec, others GEMMs
    p = make_problem(tokens, experts, top_k, dtype, seed=tokens)
    assert_matches(run_cpu(p, threads=threads), p)


@pytest.mark.parametrize("path,tokens", [("decode", 3), ("sorted", 1), ("sorted", 2)])
def test_triton_forced_paths(path: str, tokens: int) -> None:
    # each path on the sizes the other one would get: decode with repeated experts, sorted at 1 token
    p = make_problem(tokens, 12, 4, torch.float32, seed=7)
    assert_matches(run_triton(p, path=path), p)


@pytest.mark.parametrize("transposed,concatenated", [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("tokens", [1, 33])
def test_weight_layouts(tokens: int, transposed: bool, concatenated: bool) -> None:
    # [E, H, 2I] storage (is_transposed) and interleaved [g0, u0, g1, ...] gate/up halves
    p = make_problem(tokens, 12, 4, torch.float32, transposed=transposed, concatenated=concatenated, seed=3)
    assert_matches(run_triton(p), p)
    assert_matches(run_cpu(p), p)


@pytest.mark.parametrize("dtype", DTYPES)
def test_experts_without_tokens(dtype: torch.dtype) -> None:
    # only 5 of 16 experts receive tokens: empty experts must cost nothing and write nothing
    p = make_problem(40, 16, 4, dtype, pool=[0, 3, 4, 9, 15], seed=5)
    assert_matches(run_triton(p), p)
    assert_matches(run_cpu(p), p)


@pytest.mark.parametrize("tokens", [1, 33])
def test_expert_parallel_sentinels(tokens: int) -> None:
    # ids == E (another rank's experts, as transformers' expert parallelism marks them) contribute 0
    p = make_problem(tokens, 12, 4, torch.float32, seed=11)
    p.ids[:, 1] = 12
    assert_matches(run_triton(p), p)
    assert_matches(run_cpu(p), p)


@pytest.mark.parametrize("lowp_gemm", ["native", "fp32"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("tokens", [2, 33])  # 1-3 rows per expert (direct) / >= 4 rows (fp32 tiles)
def test_cpu_low_precision_paths(tokens: int, dtype: torch.dtype, lowp_gemm: str) -> None:
    # both CPU strategies for bf16/fp16 storage, whatever this CPU's native support is
    p = make_problem(tokens, 3, 3, dtype, seed=13)
    assert_matches(run_cpu(p, lowp_gemm=lowp_gemm), p)


@pytest.mark.parametrize("rows", [2, 3, 4, 9])  # both split-bmm forms (w @ x^T up to 3 rows, x @ w^T above)
def test_fp32_split_products(rows: int) -> None:
    # the bmm over row slices equals F.linear, including the fp32-tile path of a non-multiple tile
    from emo_prune.runtime.cpu_matmul import FP32_TILE_ROWS, fp32_matmul, matmul_fp32_tiles

    gen = torch.Generator().manual_seed(rows)
    x, w = torch.randn(rows, 80, generator=gen), torch.randn(FP32_TILE_ROWS + 6, 80, generator=gen)
    with torch_threads(2):
        torch.testing.assert_close(fp32_matmul(x, w), torch.nn.functional.linear(x, w), **TOLERANCES[torch.float32])
        tiles = matmul_fp32_tiles(x, w.bfloat16())
    torch.testing.assert_close(tiles, torch.nn.functional.linear(x, w.bfloat16().float()), **TOLERANCES[torch.float32])


def test_fp32_router_weights_with_bf16_activations() -> None:
    # Mixtral hands fp32 routing weights to bf16 experts: both paths take them as they come
    p = make_problem(33, 12, 4, torch.bfloat16, seed=17)
    p.weights = p.weights.float()
    assert_matches(run_triton(p), p)
    assert_matches(run_cpu(p), p)


def test_zero_tokens() -> None:
    # an empty batch (e.g. a rank without tokens) returns an empty result instead of launching
    p = make_problem(0, 12, 4, torch.float32)
    assert run_triton(p).shape == (0, p.x.shape[1])
    assert run_cpu(p).shape == (0, p.x.shape[1])
