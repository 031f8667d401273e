"""Compile every kernel for a GPU target without a GPU: `python -m emo_prune_kernels.compile_check`.

The interpreter never lowers a kernel, so a layout, shape or dtype rule of the real compiler (dot
operand dtypes, shared memory, early returns) would only show on a GPU. This runs Triton's whole
pipeline down to a cubin (ptxas ships in the triton wheel) with the launchers' own GPU configs.
Must run with TRITON_INTERPRET unset (the kernels are then JIT functions, not interpreter wrappers).
Prints one line per kernel and exits 1 on the first failure.
"""

from __future__ import annotations

import os
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from emo_prune_kernels import align, decode, grouped_gemm, moe, reduce, routing

HOPPER = GPUTarget("cuda", 90, 32)  # H100 / H200
LAUNCH_OPTIONS = ("num_warps", "num_stages")


def compile_for(kernel, pointer_types: dict[str, str], constexprs: dict, target: GPUTarget = HOPPER) -> None:
    options = {k: constexprs.pop(k) for k in LAUNCH_OPTIONS if k in constexprs}
    signature = {name: "constexpr" if name in constexprs else pointer_types.get(name, "i32") for name in kernel.arg_names}
    triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs), target=target, options=options)


def cases():
    """(name, kernel, pointer dtypes, constexprs + launch options), as the launchers launch them."""
    for dt in ("bf16", "fp32"):
        for pairs, experts in ((8 * 8, 128), (4096 * 8, 16)):  # small and large rows per expert
            cfg = moe.sorted_config(pairs, experts, fp32=dt == "fp32")
            yield (
                f"gate_up {dt} BLOCK_M={cfg['BLOCK_M']}",
                grouped_gemm._gate_up_kernel,
                {
                    "x_ptr": f"*{dt}",
                    "w_ptr": f"*{dt}",
                    "h_ptr": f"*{dt}",
                    "sorted_ptr": "*i32",
                    "block_expert_ptr": "*i32",
                },
                dict(cfg),
            )
            yield (
                f"down {dt} BLOCK_M={cfg['BLOCK_M']}",
                grouped_gemm._down_kernel,
                {
                    "h_ptr": f"*{dt}",
                    "w_ptr": f"*{dt}",
                    "out_ptr": "*fp32",
                    "sorted_ptr": "*i32",
                    "block_expert_ptr": "*i32",
                    "route_w_ptr": f"*{dt}",
                },
                dict(cfg),
            )
        yield (
            f"decode gate_up {dt}",
            decode._decode_gate_up_kernel,
            {"x_ptr": f"*{dt}", "w_ptr": f"*{dt}", "h_ptr": f"*{dt}", "ids_ptr": "*i64"},
            moe.decode_config(),
        )
        yield (
            f"decode down {dt}",
            decode._decode_down_kernel,
            {"h_ptr": f"*{dt}", "w_ptr": f"*{dt}", "out_ptr": "*fp32", "ids_ptr": "*i64", "route_w_ptr": f"*{dt}"},
            moe.decode_config(),
        )
        yield (
            f"sum_topk {dt}",
            reduce._sum_topk_kernel,
            {"pair_out_ptr": "*fp32", "ids_ptr": "*i64", "out_ptr": f"*{dt}"},
            dict(BLOCK_T=reduce.BLOCK_T, BLOCK_H=reduce.BLOCK_H),
        )
    yield (
        "align count E=128",
        align._count_kernel,
        {"ids_ptr": "*i64", "counts_ptr": "*i32"},
        dict(BLOCK_P=align.BLOCK_P, BLOCK_E=128),
    )
    yield (
        "align scatter E=128",
        align._scatter_kernel,
        {"ids_ptr": "*i64", "chunk_start_ptr": "*i32", "expert_row_ptr": "*i32", "sorted_ptr": "*i32"},
        dict(BLOCK_P=align.BLOCK_P, BLOCK_E=128),
    )
    for shared, always_active in ((True, False), (False, True), (False, False)):
        yield (
            f"route shared={shared} always_active={always_active}",
            routing._route_kernel,
            {"logits_ptr": "*bf16", "weights_ptr": "*fp32", "ids_ptr": "*i64", "fixed_ids_ptr": "*i32"},
            dict(
                K_ROUTED=7,
                N_FIXED=int(shared or always_active),
                SHARED=shared,
                ALWAYS_ACTIVE=always_active,
                NORM=True,
                BLOCK_T=routing.BLOCK_T,
                BLOCK_E=128,
                BLOCK_K=16,
            ),
        )


def main() -> int:
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        print("unset TRITON_INTERPRET: interpreted kernels cannot be compiled", file=sys.stderr)
        return 2
    for name, kernel, pointers, constexprs in cases():
        try:
            compile_for(kernel, pointers, dict(constexprs))
        except Exception as error:  # report which kernel, then fail
            print(f"FAIL {name}: {type(error).__name__}: {error}")
            return 1
        print(f"ok   {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
