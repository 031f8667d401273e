"""The matrix products of the CPU experts path, each routed to the fastest kernel torch has for it.

Shapes: x [M, K] rows, w [N, K] one expert's weight in linear() orientation (any strides) -> [M, N].

Measured on the 2-core AMD EPYC VM (Zen 5: AVX-512 with AVX512_BF16, no AMX), torch 2.13 CPU,
2 threads, 8 EMO-width gate_up panels [2048, 2048] per call, read bandwidth 45 GB/s (sum of 1 GiB):
  1 row, fp32       F.linear is MKL sgemv on ONE core: 21 GB/s. The same product as a bmm over
                    thread-many row (or column) slices runs on all cores: 40 GB/s (36 transposed).
  1 row, bf16/fp16  oneDNN's brgemm: 24-27 GB/s. With oneDNN switched off, ATen's gemv: 46-49 GB/s.
  >= 2 rows, bf16 with oneDNN avx512_bf16 kernels ("native"): 450-800 GFLOP/s, used as is.
  >= 2 rows, bf16/fp16 without native kernels (fp16 here; bf16 under ONEDNN_MAX_CPU_ISA=AVX2, which
                    emulates the AVX2 machine of docs/kernels.md): 47-55 GFLOP/s. Converting 512-row weight
                    tiles into a reused fp32 buffer and running sgemm instead, 16 experts:
                    32 rows 31.5 ms vs 78 ms, 8 rows 16 vs 23 ms (and docs/kernels.md's AVX2 machine does
                    ~20 GFLOP/s in bf16 against ~155 in fp32). Tiles of 256 / 1024 rows: 33.3 / 31.6 ms.

fp32 products of several rows (x [M, K] @ w [N, K]^T, 16 EMO-width panels, 2 threads): F.linear
(MKL sgemm) has slow shapes, e.g. M = 2: 25.6 ms, M = 3: 35 ms (one tile product with M = 3 took
94 ms), M = 8: 21.4 ms; the same products as a bmm over thread-many row slices of w: 9.0 (w @ x^T
form), 13.0 (w @ x^T), 14.0 ms (x @ w^T form), and never slower up to M = 128 (101 vs 102 ms).
The w @ x^T form wins up to 3 rows, x @ w^T from 4 (M = 4: 17.2 vs 13.0 ms).
Low-precision weights without native kernels: direct vs fp32 tiles, gate_up of 16 experts:
M = 2: 5.2 vs 9.4 ms, 3: 7.7 vs 12.0, 4: 11.0 vs 10.3, 8: 22.5 vs 17.5 -> tiles from 4 rows.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from emo_prune.errors import RuntimeSetupError

# Rows of a low-precision weight converted to fp32 at a time (see the table above): 512 x H fp32
# stays in L3 (4 MB at H = 2048) and amortises the per-call cost.
FP32_TILE_ROWS = 512
# Rows from which low-precision products without native kernels run in fp32 tiles (table above).
FP32_TILES_MIN_ROWS = 4
# Up to this many rows the split bmm takes the w @ x^T form, above it x @ w^T (table above).
SPLIT_WX_MAX_ROWS = 3
# Environment override of the low-precision GEMM choice: "auto" (capability), "native", "fp32".
LOWP_GEMM_ENV = "EMO_PRUNE_CPU_LOWP_GEMM"

_local = threading.local()


@functools.cache
def _native_capability(dtype: torch.dtype) -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        if dtype == torch.bfloat16:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        if dtype == torch.float16:
            return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False
    return False


def lowp_gemm_native(dtype: torch.dtype, override: str | None = None) -> bool:
    """Whether GEMMs of several rows may run in `dtype` itself (else: fp32 tiles).

    override (or $EMO_PRUNE_CPU_LOWP_GEMM): "native", "fp32" or "auto" (oneDNN's own capability check,
    which honours ONEDNN_MAX_CPU_ISA).
    """
    if dtype == torch.float32:
        return True
    choice = override or os.environ.get(LOWP_GEMM_ENV, "auto")
    if choice == "native":
        return True
    if choice == "fp32":
        return False
    if choice != "auto":
        raise RuntimeSetupError(f"{LOWP_GEMM_ENV} must be auto, native or fp32, not {choice!r}")
    return _native_capability(dtype)


@contextlib.contextmanager
def onednn_off(enabled: bool = True) -> Iterator[None]:
    """Route low-precision one-row products to ATen's gemv (46 vs 26 GB/s). The switch is global to
    the process: restored on exit, so only this thread's products in between are affected in practice."""
    if not enabled or not hasattr(torch._C, "_set_mkldnn_enabled"):
        yield
        return
    before = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(before)


def matvec(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """x [1, K] @ w[N, K]^T into out [1, N] (contiguous), at memory speed on every core.

    fp32 runs as a bmm over thread-many slices of w; low precision expects `onednn_off()` around it.
    """
    parts = torch.get_num_threads()
    N, K = w.shape
    if w.dtype == torch.float32 and parts > 1 and N % parts == 0:
        xs = x.reshape(1, 1, K).expand(parts, 1, K)  # [P, 1, K]
        if w.stride() == (K, 1):  # row-major expert: split its output rows
            torch.bmm(xs, w.view(parts, N // parts, K).transpose(1, 2), out=out.view(parts, 1, N // parts))
            return out
        if w.stride() == (1, N):  # transposed storage [K, N]: split its columns
            cols = w.t().view(K, parts, N // parts).transpose(0, 1)  # [P, K, N/P]
            torch.bmm(xs, cols, out=out.view(parts, 1, N // parts))
            return out
    return torch.mm(x, w.t(), out=out)


def _tile_buffer(rows: int, cols: int) -> torch.Tensor:
    """A reused fp32 scratch [rows, cols]: fresh multi-MB tensors cost page faults on every call.

    Always a normal tensor, never an inference tensor: one allocated under `torch.inference_mode()` (a
    profile) could not be written later outside it (a forward under `no_grad`), while a normal tensor
    can be written in both."""
    buf = getattr(_local, "tile", None)
    if buf is None or buf.numel() < rows * cols:
        with torch.inference_mode(False):
            buf = _local.tile = torch.empty(rows * cols, dtype=torch.float32)
    return buf[: rows * cols].view(rows, cols)


def fp32_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x [M, K] fp32 @ w [N, K]^T fp32 -> [M, N], as a bmm over thread-many row slices of w."""
    parts = torch.get_num_threads()
    (M, K), N = x.shape, w.shape[0]
    if parts == 1 or N % parts or w.stride() != (K, 1):
        return F.linear(x, w)
    slices = w.view(parts, N // parts, K)  # [P, N/P, K]
    if M <= SPLIT_WX_MAX_ROWS:
        y = torch.bmm(slices, x.t().unsqueeze(0).expand(parts, K, M))  # [P, N/P, M]
        return y.reshape(N, M).t()
    y = torch.bmm(x.unsqueeze(0).expand(parts, M, K), slices.transpose(1, 2))  # [P, M, N/P]
    return y.transpose(0, 1).reshape(M, N)


def matmul_fp32_tiles(x32: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x32 [M, K] fp32 @ w [N, K]^T with w in low precision: fp32 compute, w converted tile by tile."""
    N, K = w.shape
    out = torch.empty(x32.shape[0], N, dtype=torch.float32)  # [M, N]
    for start in range(0, N, FP32_TILE_ROWS):
        stop = min(start + FP32_TILE_ROWS, N)
        tile = _tile_buffer(stop - start, K)
        tile.copy_(w[start:stop])  # bf16/fp16 -> fp32
        out[:, start:stop] = fp32_matmul(x32, tile)
    return out


def native_rows(m: int) -> int:
    """The row count a native low-precision GEMM of `m` rows runs with (zero rows padded on).

    oneDNN compiles and caches one kernel per GEMM shape (up to 1,024 of them, about 1 MB each), and an
    expert's row count changes with every batch: measured on this machine's AMX CPU, a bf16 profile of a
    2.5 GB EMO grew by 0.58 GB over 6 batches (1 GB under transformers' grouped_mm) and paid a compile for
    each new shape. Powers of two up to 256 rows, then multiples of 128, keep it to a few dozen shapes per
    weight: +0.03 GB, and faster (0.72 vs 0.81 s a batch; first batch 0.79 vs 1.33 s). Small row counts
    are memory-bound, so their padding is free; above 256 rows it costs at most a third more arithmetic.
    """
    if m <= 256:
        return 1 << (m - 1).bit_length()
    return -(-m // 128) * 128


def matmul(x: torch.Tensor, w: torch.Tensor, native: bool) -> torch.Tensor:
    """x [M, K] @ w [N, K]^T for M >= 2 rows. Output in w's dtype, or fp32 for fp32 tiles."""
    if w.dtype == torch.float32:
        return fp32_matmul(x.float(), w)
    if native:
        rows = native_rows(x.shape[0])
        if rows == x.shape[0]:
            return F.linear(x.to(w.dtype), w)
        padded = x.new_zeros(rows, x.shape[1], dtype=w.dtype)  # [rows, K]
        padded[: x.shape[0]] = x
        return F.linear(padded, w)[: x.shape[0]]
    if x.shape[0] < FP32_TILES_MIN_ROWS:
        return F.linear(x.to(w.dtype), w)
    return matmul_fp32_tiles(x.float(), w)
