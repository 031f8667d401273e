"""llama.cpp vs transformers + emo_cpu on the same model, same threads, same run: speed and size.

    python examples/gguf_benchmark.py                          # bundled emo-small, 2 threads
    python examples/gguf_benchmark.py --model DIR --threads 4 --prompt 256 --decode 64

Exports the model to GGUF (f32, f16, q8_0, q4_k_m) into a temporary folder, then times in one process,
alternating, --repeat times each (best kept):
  prompt  one forward over --prompt tokens (tokens/s)
  decode  --decode greedy steps of one token each with the KV cache (tokens/s), from that prompt
for transformers (fp32, experts_implementation emo_cpu, torch threads = --threads) and llama.cpp
(llama-cpp-python, n_threads = --threads, its default F16 KV cache). Prints file sizes next to the
safetensors folder's, and every speed as a ratio to transformers measured in the same run. The machine
may be shared: compare the ratios, not absolute times. Needs llama-cpp-python (pip install -e ".[edge]").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BUNDLED = Path(__file__).resolve().parents[1] / "emo_prune" / "assets" / "models" / "emo-small"
DTYPES = ("f32", "f16", "q8_0", "q4_k_m")


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def transformers_speeds(model_dir: Path, ids: list[int], decode: int, repeat: int) -> tuple[float, float]:
    import emo_prune.runtime  # noqa: F401  (registers emo_cpu)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, experts_implementation="emo_cpu").eval()
    prompt = torch.tensor([ids])

    def run_prompt() -> None:
        with torch.no_grad():
            model(prompt, use_cache=False)

    def run_decode() -> None:
        with torch.no_grad():
            out = model(prompt, use_cache=True)
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            for _ in range(decode):
                out = model(token, past_key_values=cache, use_cache=True)
                cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)

    t_prompt = best(run_prompt, repeat)
    t_decode = best(run_decode, repeat) - t_prompt
    return len(ids) / t_prompt, decode / t_decode


def llama_speeds(path: Path, ids: list[int], decode: int, repeat: int, threads: int) -> tuple[float, float]:
    from emo_prune.export.quantize import llama_cpp_module
    from emo_prune.export.llamacpp import _quiet_stderr

    llama_cpp = llama_cpp_module()
    with _quiet_stderr():
        llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=len(ids) + decode + 8, n_batch=len(ids), n_threads=threads,
            n_threads_batch=threads, logits_all=False, verbose=False,
        )  # fmt: skip

    def run_prompt() -> None:
        llm.reset()
        llm.eval(ids)

    def next_token() -> int:  # greedy, as the transformers side
        logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.ctypeslib.as_array(logits, shape=(llm.n_vocab(),)).argmax())

    def run_decode() -> None:
        llm.reset()
        llm.eval(ids)
        for _ in range(decode):
            llm.eval([next_token()])

    t_prompt = best(run_prompt, repeat)
    t_decode = best(run_decode, repeat) - t_prompt
    llm.close()
    return len(ids) / t_prompt, decode / t_decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=BUNDLED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from emo_prune.export import export_gguf

    ids = [(7 * i + 3) % 1000 + 2 for i in range(args.prompt)]
    folder = sum(p.stat().st_size for p in args.model.glob("*.safetensors"))
    rows = []
    hf_prompt, hf_decode = transformers_speeds(args.model, ids, args.decode, args.repeat)
    rows.append({"runtime": "transformers+emo_cpu", "dtype": "fp32", "bytes": folder, "prompt_tok_s": hf_prompt, "decode_tok_s": hf_decode})
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in DTYPES:
            result = export_gguf(args.model, Path(tmp) / f"{dtype}.gguf", dtype=dtype, threads=args.threads)
            prompt, decode = llama_speeds(Path(result.path), ids, args.decode, args.repeat, args.threads)
            rows.append({"runtime": "llama.cpp", "dtype": dtype, "bytes": result.bytes, "prompt_tok_s": prompt, "decode_tok_s": decode})
    for row in rows:
        row["size_vs_safetensors"] = row["bytes"] / folder
        row["prompt_vs_transformers"] = row["prompt_tok_s"] / hf_prompt
        row["decode_vs_transformers"] = row["decode_tok_s"] / hf_decode
    if args.json:
        print(json.dumps({"threads": args.threads, "prompt": args.prompt, "decode": args.decode, "rows": rows}, indent=2))
        return
    print(f"{args.model.name}: {args.prompt}-token prompt, {args.decode} decode steps, {args.threads} threads (best of {args.repeat})")
    print(f"{'runtime':<22}{'dtype':<8}{'size':>10}{'x st':>7}{'prompt tok/s':>14}{'x tf':>7}{'decode tok/s':>14}{'x tf':>7}")
    for r in rows:
        print(
            f"{r['runtime']:<22}{r['dtype']:<8}{r['bytes'] / 1e6:>8.1f}MB{r['size_vs_safetensors']:>7.2f}"
            f"{r['prompt_tok_s']:>14.0f}{r['prompt_vs_transformers']:>7.2f}{r['decode_tok_s']:>14.0f}{r['decode_vs_transformers']:>7.2f}"
        )


if __name__ == "__main__":
    main()
