"""Timing, the machine's read bandwidth, and a machine description for benchmark reports."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from emo_prune.common.units import gb_per_s

# 1 GiB: 32x the 32 MB L3 of the 2-core EPYC VM, so the sum streams from DRAM (45.6 GB/s there).
BANDWIDTH_BYTES = 1 << 30


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, min_seconds: float = 0.5, max_reps: int = 50) -> tuple[float, float]:
    """(median, best) seconds of one call, after 2 warm-up calls, over >= 3 calls lasting >= min_seconds.

    The median is the figure to quote; the best says what the code does when nothing else competes
    for the cores (on a shared 2-core machine the two differ by several times)."""
    for _ in range(2):
        fn()
    synchronize(device)
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start_all < min_seconds and len(times) < max_reps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def measure_read_bandwidth(device: torch.device | str = "cpu", nbytes: int = BANDWIDTH_BYTES) -> float:
    """GB/s of summing a large fp32 tensor: the read bandwidth the memory-bound decode can hope for."""
    device = torch.device(device)
    data = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    best = min(time_call(lambda: data.sum(), device, min_seconds=0.3)[1] for _ in range(3))
    return gb_per_s(nbytes, best)


def machine_description(device: torch.device | str = "cpu") -> dict[str, Any]:
    device = torch.device(device)
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        # other processes on the cores ruin CPU timings (a 2-thread region waits for a preempted
        # thread: +8 ms stalls were seen): the 1-minute load average says whether a run was alone
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if hasattr(torch, "cpu") and hasattr(torch.cpu, "get_capabilities"):
        caps = torch.cpu.get_capabilities()
        info["cpu_isa"] = [k for k in ("avx2", "avx512_f", "avx512_bf16", "amx_bf16") if caps.get(k)]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
