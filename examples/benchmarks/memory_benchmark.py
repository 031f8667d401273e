"""Peak memory of every model-loading command, as a fraction of the checkpoint, at two checkpoint sizes.

    python examples/benchmarks/memory_benchmark.py                        # 2.5 GB and 10 GB (12 and 48 layers)
    python examples/benchmarks/memory_benchmark.py --layers 4 16          # smaller: 0.85 GB and 3.4 GB

Writes synthetic EMO-shaped bf16 checkpoints in AI2's per-expert layout (`write_large_emo` of the
test factory: hidden 1024, 32 experts of width 1024 with 1 shared, top-8, ~210 MB per layer), growing
by depth, and a 25% build of each (`extract`). Then runs each command in a fresh interpreter and reads
its peak RSS from /proc/self/status VmHWM (not ru_maxrss, which Linux carries across fork+exec):

  profile              the default (auto: the memory plan's choice, the layer stream when it needs less), bf16
  profile --whole      bf16 (the whole model fits here at both sizes)
  profile --layerwise  bf16
  verify --layerwise   both models in float32, as verify always runs
  greedy --layerwise   float32, as greedy always runs
  eval --layerwise     accelerate's disk offload with --max-memory 1.5GB (most layers on disk), bf16,
                       2 documents of emo_math_mc, the default experts implementation (emo_cpu here)
  and the whole-model path of verify, greedy and eval, on the smaller checkpoint only (on the larger
  one verify and greedy would need 2x its size in float32: more than this machine's memory)

Prints, per command and size, peak RSS, peak / checkpoint bytes, seconds, and the time of the
layerwise path over the whole-model path measured in the same run. Ratios include the runtime (the
RSS of a process that only imports emo-prune and torch, printed too). The machine may be shared:
compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, sys, time
import torch
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
job = json.loads(sys.argv[1])
from emo_prune.memory import MemoryOptions
from emo_prune.process.memory import peak_rss_bytes
docs = None
if job["cmd"] in ("profile", "greedy"):
    from emo_prune.calib import load_documents
    half = job["docs"] // 2
    docs = load_documents(["builtin:code"])[:half] + load_documents(["builtin:math"])[:half]
start = time.perf_counter()
if job["cmd"] == "import":
    pass
elif job["cmd"] == "profile":
    from emo_prune.profile.runner import ProfileSettings, profile_model
    layerwise = {"auto": None, "layerwise": True, "whole": False}[job["path"]]
    settings = ProfileSettings(seq_len=128, batch_size=4, max_tokens=job["tokens"], device="cpu", dtype="auto", layerwise=layerwise)
    profile = profile_model(job["model"], docs, settings)
    job["chosen"] = "layerwise" if profile.settings["layerwise"] else "whole"
elif job["cmd"] == "verify":
    from emo_prune.verify import verify
    report = verify(job["model"], job["build"], num_prompts=2, memory=MemoryOptions(job["path"]))
    assert report.passed, report.max_abs_diff
    job["chosen"] = report.path
elif job["cmd"] == "greedy":
    from emo_prune.io import Checkpoint
    from emo_prune.select import GreedySettings, SelectOptions, select_experts
    arch = Checkpoint.open(job["model"]).architecture
    greedy = GreedySettings(seq_len=job["tokens"] // half, batch_size=4, memory=MemoryOptions(job["path"]))
    options = SelectOptions(keep="0.25", method="greedy", domains=("code", "math"), greedy=greedy)
    select_experts(arch, options, model_dir=job["model"], documents=docs)
    job["chosen"] = job["path"]
elif job["cmd"] == "eval":
    from emo_prune.eval import EvalSettings, evaluate_model
    settings = EvalSettings(tasks=("emo_math_mc",), limit=2, batch_size=2, max_length=128, impl="auto",
                            memory=job["path"], max_memory=job.get("max_memory"))
    evaluate_model(job["model"], settings)
    job["chosen"] = job["path"]
seconds = time.perf_counter() - start
print(json.dumps({"peak": peak_rss_bytes(), "seconds": seconds, "chosen": job.get("chosen")}))
"""

# (label, command, path, extra job fields); whole-model rows run on the smaller checkpoint only
ROWS = [
    ("profile (default)", "profile", "auto", {}),
    ("profile --whole", "profile", "whole", {}),
    ("profile --layerwise", "profile", "layerwise", {}),
    ("verify --layerwise", "verify", "layerwise", {}),
    ("greedy --layerwise", "greedy", "layerwise", {}),
    ("eval --layerwise (disk offload)", "eval", "layerwise", {"max_memory": "1.5GB"}),
]
WHOLE_ROWS = [
    ("verify --whole", "verify", "whole", {}),
    ("greedy --whole", "greedy", "whole", {}),
    ("eval --whole", "eval", "whole", {}),
]


def run(job: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(job)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{job['cmd']} {job['path']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_models(root: Path, layers: int) -> tuple[Path, Path, int]:
    from emo_prune.extract import extract
    from emo_prune.io import Checkpoint
    from emo_prune.select import SelectOptions, select_experts
    from emo_prune.testing.factory import write_large_emo

    source = write_large_emo(
        root / f"emo-{layers}", layers=layers, hidden=1024, heads=8, kv_heads=8, experts=32, expert_width=1024,
        top_k=8, shared=1, max_shard_size="2GB",
    )  # fmt: skip
    checkpoint = Checkpoint.open(source)
    plan = select_experts(checkpoint.architecture, SelectOptions(keep="0.25", method="random"))
    build = root / f"emo-{layers}-25pct"
    extract(source, plan, build)
    return source, build, checkpoint.total_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs=2, default=(12, 48), help="depths of the two checkpoints")
    parser.add_argument("--docs", type=int, default=8, help="calibration documents (half code, half math) for profile and greedy")
    parser.add_argument("--tokens", type=int, default=512, help="calibration tokens per domain (greedy: in all)")
    parser.add_argument("--dir", default=None, help="where to write the checkpoints (default: system temp)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these commands (profile verify greedy eval)")
    args = parser.parse_args()
    rows = [r for r in ROWS if args.only is None or r[1] in args.only]
    whole_rows = [r for r in WHOLE_ROWS if args.only is None or r[1] in args.only]

    parent = Path(args.dir or tempfile.gettempdir())
    need = 1.6 * 0.21e9 * args.layers[1] + 0.21e9 * args.layers[0] * 1.3
    if shutil.disk_usage(parent).free < need:
        raise SystemExit(f"{parent} has {shutil.disk_usage(parent).free / 1e9:.1f} GB free; this needs about {need / 1e9:.0f} GB")
    root = Path(tempfile.mkdtemp(prefix="emo-prune-memory-bench-", dir=parent))
    os.environ["EMO_PRUNE_CACHE"] = str(root / "cache")
    base = run({"cmd": "import", "path": "-"})
    print(f"runtime (import only): peak RSS {base['peak'] / 1e6:.0f} MB")
    results: dict[tuple[str, int], dict] = {}
    sizes: dict[int, int] = {}
    try:
        for i, layers in enumerate(args.layers):
            t = time.perf_counter()
            source, build, size = write_models(root, layers)
            sizes[layers] = size
            print(
                f"\n{layers} layers: {size / 1e9:.2f} GB bf16 (written with its 25% build in {time.perf_counter() - t:.0f} s)",
                flush=True,
            )
            for label, cmd, path, extra in rows + (whole_rows if i == 0 else []):
                job = {
                    "cmd": cmd,
                    "path": path,
                    "model": str(source),
                    "build": str(build),
                    "docs": args.docs,
                    "tokens": args.tokens,
                    **extra,
                }
                r = run(job)
                results[(label, layers)] = r
                print(
                    f"  {label:34s} peak {r['peak'] / 1e9:6.2f} GB = {r['peak'] / size:.2f}x  {r['seconds']:7.1f} s  ({r['chosen']})",
                    flush=True,
                )
            shutil.rmtree(source)
            shutil.rmtree(build)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    small, large = args.layers
    runtime = base["peak"]

    def cell(r: dict, size: int) -> str:
        return f"{r['peak'] / 1e9:.2f} GB: {r['peak'] / size:.2f}x ({(r['peak'] - runtime) / size:.2f}x)"

    print(f"\nx checkpoint: peak RSS / checkpoint bytes (in brackets: without the {runtime / 1e6:.0f} MB runtime)")
    print(
        f"| command | {sizes[small] / 1e9:.1f} GB checkpoint | {sizes[large] / 1e9:.1f} GB checkpoint | peak growth for {sizes[large] / sizes[small]:.0f}x the bytes | time vs whole ({sizes[small] / 1e9:.1f} GB) |"
    )
    print("|---|---|---|---|---|")
    whole_of = {
        "profile (default)": "profile --whole",
        "profile --layerwise": "profile --whole",
        "verify --layerwise": "verify --whole",
        "greedy --layerwise": "greedy --whole",
        "eval --layerwise (disk offload)": "eval --whole",
    }
    for label, _, _, _ in rows:
        a, b = results[(label, small)], results[(label, large)]
        whole = results.get((whole_of.get(label, label), small))
        versus = f"{a['seconds'] / whole['seconds']:.2f}x" if whole else ""
        print(f"| {label} | {cell(a, sizes[small])} | {cell(b, sizes[large])} | {b['peak'] / a['peak']:.2f}x | {versus} |")
    for label, _, _, _ in whole_rows:
        print(f"| {label} | {cell(results[(label, small)], sizes[small])} | not run | | 1.00x |")


if __name__ == "__main__":
    main()
