"""Every kernel compiles for an H100 (sm_90) with the launchers' GPU configs, no GPU needed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_kernels_compile_for_hopper() -> None:
    # the interpreter never lowers a kernel: this catches dot dtype, shared-memory and shape rules
    # that only the compiler enforces. A child process, because interpreted kernels cannot compile.
    triton = pytest.importorskip("triton")
    if "nvidia" not in getattr(triton.backends, "backends", {}):
        pytest.skip("this triton build has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    result = subprocess.run(
        [sys.executable, "-m", "emo_prune_kernels.compile_check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
