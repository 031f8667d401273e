"""Extraction speed and memory on a synthetic EMO-shaped checkpoint of several GB.

    python examples/benchmarks/extract_benchmark.py                 # 4 layers, hidden 2048, 64 experts of width 1024, bf16
    python examples/benchmarks/extract_benchmark.py --layers 8      # bigger source, same output per layer

Writes the checkpoint (random bytes: nothing is computed on them) into a temporary folder, picks
12.5% of the experts per layer, then times in the same run:
  (a) a plain copy of as many bytes as the extraction writes (kernel file-to-file copy, as `cp` and
      shutil.copyfile do, plus fsync, as extract does), and
  (b) `extract` in a subprocess, whose peak RSS comes from getrusage(RUSAGE_CHILDREN).
Runs alternate, --repeat times each, after an os.sync(); the best of each is kept. Prints sizes,
GB/s, the ratio (b)/(a) and peak RSS next to the RSS of a subprocess that only imports emo-prune (the fixed overhead). The source was just
written, so both read it from the page cache. The source's sha256 identity is computed once before
timing, as `profile` and `select` do earlier in the pipeline (it is cached); its cost is printed too.
The machine may be shared: compare the ratio, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from emo_prune.io import Checkpoint, model_identity
from emo_prune.io.shards import ShardedWriter, TensorSpec
from emo_prune.io.sizes import parse_size
from emo_prune.select import SelectOptions, select_experts

CHILD = """
import json, resource, sys, time
from emo_prune.extract import extract
from emo_prune.select import Plan
t = time.perf_counter()
result = extract(sys.argv[1], Plan.load(sys.argv[2]), sys.argv[3], max_shard_size=sys.argv[4], dtype=sys.argv[5])
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": result.total_bytes, "files": len(result.files)}))
"""
IMPORT_ONLY = "import emo_prune.extract, emo_prune.select"


def emo_config(args: argparse.Namespace) -> dict:
    return {
        "model_type": "emo", "architectures": ["EmoForCausalLM"], "vocab_size": args.vocab,
        "hidden_size": args.hidden, "intermediate_size": args.width, "num_hidden_layers": args.layers,
        "num_attention_heads": args.hidden // 128, "num_key_value_heads": args.hidden // 128,
        "num_experts": args.experts, "num_experts_per_tok": 8, "num_shared_experts": 1,
        "norm_topk_prob": False, "rms_norm_eps": 1e-6, "rope_theta": 500000.0, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "max_position_embeddings": 4096,
    }  # fmt: skip


def synthetic_specs(args: argparse.Namespace) -> list[TensorSpec]:
    H, I, V = args.hidden, args.width, args.vocab
    specs = [TensorSpec("model.embed_tokens.weight", "BF16", (V, H))]
    for i in range(args.layers):
        p = f"model.layers.{i}."
        specs += [TensorSpec(p + f"self_attn.{n}_proj.weight", "BF16", (H, H)) for n in "qkvo"]
        specs += [TensorSpec(p + f"pre_{n}_layernorm.weight", "BF16", (H,)) for n in ("attention", "feedforward")]
        specs.append(TensorSpec(p + "mlp.gate.weight", "BF16", (args.experts, H)))
        for e in range(args.experts):
            for proj, shape in (("gate", (I, H)), ("up", (I, H)), ("down", (H, I))):
                specs.append(TensorSpec(p + f"mlp.experts.{e}.{proj}_proj.weight", "BF16", shape))
    specs += [TensorSpec("model.norm.weight", "BF16", (H,)), TensorSpec("lm_head.weight", "BF16", (V, H))]
    return specs


def write_source(folder: Path, args: argparse.Namespace) -> int:
    folder.mkdir(parents=True)
    specs = synthetic_specs(args)
    writer = ShardedWriter(folder, specs, parse_size(args.shard_size))  # fsync: no writeback during the timings
    generator = torch.Generator().manual_seed(0)
    for spec in specs:
        noise = torch.randint(0, 256, (spec.nbytes,), dtype=torch.uint8, generator=generator)
        writer.write_tensor(spec.name, noise.view(torch.bfloat16).reshape(spec.shape))
    writer.finish()
    (folder / "config.json").write_text(json.dumps(emo_config(args), indent=2))
    return writer.total_bytes


def plain_copy(source: Path, target: Path, nbytes: int) -> float:
    """Copy the first `nbytes` bytes of the source shards into one file (sendfile + fsync); seconds."""
    shards = sorted(source.glob("*.safetensors"))
    start = time.perf_counter()
    out_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = nbytes
        for shard in shards:
            in_fd = os.open(shard, os.O_RDONLY)
            offset, size = 0, min(left, shard.stat().st_size)
            while offset < size:
                offset += os.sendfile(out_fd, in_fd, offset, min(size - offset, 1 << 30))
            os.close(in_fd)
            left -= size
            if left == 0:
                break
        os.fsync(out_fd)
    finally:
        os.close(out_fd)
    return time.perf_counter() - start


def run_child(code: str, *argv: str) -> tuple[dict | None, float]:
    """Run `code` in a fresh interpreter; returns (its JSON line or None, peak RSS in MB of the children so far:
    the import-only child runs first and is the smallest, so after an extract child this is the extract's peak)."""
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, max over the children waited for so far
    return (json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None), peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--shard-size", default="2GB", help="source shard size")
    parser.add_argument("--out-shard-size", default="5GB")
    parser.add_argument("--keep", default="0.125")
    parser.add_argument("--dtype", default="same", help="output dtype of the extraction")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to put the temporary folder (default: system temp)")
    args = parser.parse_args()

    source_bytes = sum(s.nbytes for s in synthetic_specs(args))
    root_parent = Path(args.dir or tempfile.gettempdir())
    free = shutil.disk_usage(root_parent).free
    need = int(source_bytes * 1.8) + (1 << 30)
    if free < need:
        raise SystemExit(f"{root_parent} has {free / 1e9:.1f} GB free; this benchmark needs about {need / 1e9:.1f} GB")
    root = Path(tempfile.mkdtemp(prefix="emo-prune-bench-", dir=root_parent))
    os.environ["EMO_PRUNE_CACHE"] = str(root / "cache")
    try:
        t = time.perf_counter()
        write_source(root / "source", args)
        print(
            f"source: {source_bytes / 1e9:.2f} GB, {args.layers} layers x {args.experts} experts of width {args.width}, "
            f"hidden {args.hidden}, bf16, shards of {args.shard_size} (written in {time.perf_counter() - t:.1f} s)"
        )
        checkpoint = Checkpoint.open(root / "source")
        t = time.perf_counter()
        model_identity(checkpoint)
        print(f"source identity (sha256 of every shard, once, cached): {time.perf_counter() - t:.2f} s")
        plan = select_experts(checkpoint.architecture, SelectOptions(keep=args.keep, method="random"))
        plan.save(root / "plan.json")

        _, overhead = run_child(IMPORT_ONLY + "\nprint('{}')")
        copies, extracts, peak = [], [], 0.0
        out_bytes = 0
        for i in range(args.repeat):
            out = root / f"out{i}"
            os.sync()  # start each timing with no dirty pages of earlier steps still being written back
            argv = (str(root / "source"), str(root / "plan.json"), str(out), args.out_shard_size, args.dtype)
            result, peak_i = run_child(CHILD, *argv)
            assert result is not None
            extracts.append(result["seconds"])
            out_bytes = result["bytes"]
            peak = max(peak, peak_i)
            shutil.rmtree(out)
            os.sync()
            copies.append(plain_copy(root / "source", root / "copy.bin", out_bytes))
            (root / "copy.bin").unlink()
        copy_speed = out_bytes / min(copies) / 1e9
        extract_speed = out_bytes / min(extracts) / 1e9
        print(f"output: {out_bytes / 1e9:.2f} GB at keep {args.keep} (dtype {args.dtype})")
        runs = lambda times: ", ".join(f"{t:.2f}" for t in times)  # noqa: E731
        print(f"(a) plain copy: best {min(copies):.2f} s = {copy_speed:.2f} GB/s  (runs: {runs(copies)})")
        print(f"(b) extract:    best {min(extracts):.2f} s = {extract_speed:.2f} GB/s  (runs: {runs(extracts)})")
        print(f"speed ratio (b)/(a): {extract_speed / copy_speed:.2f}  (target >= 0.5)")
        print(f"peak RSS of the extract subprocess: {peak:.0f} MB (import-only subprocess: {overhead:.0f} MB; target < 1024)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
