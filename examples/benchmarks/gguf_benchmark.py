"""llama.cpp vs transformers + emo_cpu on the same model, same threads, same run: speed and size.

    python examples/benchmarks/gguf_benchmark.py                          # bundled emo-small, 2 threads
    python examples/benchmarks/gguf_benchmark.py --model DIR --threads 4 --prompt 256 --decode 64

Exports the model to GGUF (f32, f16, q8_0, q4_k_m) into a temporary folder, then times in one process,
in --repeat rounds that run every runtime in turn (best kept):
  prompt  one forward over --prompt tokens (tokens/s)
  decode  --decode greedy steps of one token each with the KV cache (tokens/s), from that prompt
for transformers (fp32, experts_implementation emo_cpu, torch threads = --threads) and llama.cpp
(llama-cpp-python, n_threads = --threads, its default F16 KV cache). The prompt is held-out code
(builtin:code:heldout). Prints file sizes next to the safetensors folder's, every speed as a ratio to
transformers measured in the same run, and each file's agreement with transformers' fp32 logits on the
prompt (top-1 share, max |logit diff|; llama.cpp defaults, as a device runs it). The machine
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

BUNDLED = Path(__file__).resolve().parents[2] / "emo_prune" / "assets" / "models" / "emo-small"
DTYPES = ("f32", "f16", "q8_0", "q4_k_m")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class TransformersRunner:
    """transformers fp32 with emo-prune's CPU experts kernel; `prompt()` / `decode()` return seconds."""

    def __init__(self, model_dir: Path, ids: list[int], steps: int):
        from transformers import AutoModelForCausalLM

        import emo_prune.runtime  # noqa: F401  (registers emo_cpu)

        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, experts_implementation="emo_cpu").eval()
        self.ids, self.steps = torch.tensor([ids]), steps

    def prompt(self) -> float:
        with torch.no_grad():
            return timed(lambda: self.model(self.ids, use_cache=False))

    def decode(self) -> float:  # the decode steps only, after the prompt filled the cache
        with torch.no_grad():
            out = self.model(self.ids, use_cache=True)
            state = [out.past_key_values, out.logits[:, -1:].argmax(-1)]

            def steps() -> None:
                for _ in range(self.steps):
                    step = self.model(state[1], past_key_values=state[0], use_cache=True)
                    state[0], state[1] = step.past_key_values, step.logits[:, -1:].argmax(-1)

            return timed(steps)

    def close(self) -> None:
        del self.model


class LlamaRunner:
    """llama.cpp through llama-cpp-python, its default settings (F16 KV cache), greedy decode."""

    def __init__(self, path: Path, ids: list[int], steps: int, threads: int):
        from emo_prune.export.llama_cpp_binding import llama_cpp_module, quiet_stderr
        from emo_prune.export.llamacpp import cpu_has_amx, without_extra_buffers

        self.llama_cpp = llama_cpp_module()
        with quiet_stderr(), without_extra_buffers(self.llama_cpp, when=cpu_has_amx()):  # see emo_prune/export/llamacpp.py
            self.llm = self.llama_cpp.Llama(
                model_path=str(path), n_ctx=len(ids) + steps + 8, n_batch=len(ids), n_threads=threads,
                n_threads_batch=threads, logits_all=False, verbose=False,
            )  # fmt: skip
        self.ids, self.steps = ids, steps

    def prompt(self) -> float:
        self.llm.reset()
        return timed(lambda: self.llm.eval(self.ids))

    def _next(self) -> int:
        logits = self.llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return int(np.ctypeslib.as_array(logits, shape=(self.llm.n_vocab(),)).argmax())

    def decode(self) -> float:
        self.llm.reset()
        self.llm.eval(self.ids)
        return timed(lambda: [self.llm.eval([self._next()]) for _ in range(self.steps)])

    def close(self) -> None:
        self.llm.close()


def heldout_ids(model_dir: Path, count: int) -> list[int]:
    from transformers import AutoTokenizer

    from emo_prune.calib import load_documents

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    text = "\n".join(d.text for d in load_documents(["builtin:code:heldout"], seed=0)[:20])
    return tokenizer.encode(text, add_special_tokens=False)[:count]


def reference_logits(model_dir: Path, ids: list[int]) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def agreement(path: Path, ids: list[int], expected: torch.Tensor, threads: int) -> tuple[float, float]:
    from emo_prune.export.llamacpp import gguf_logits, open_gguf

    llm = open_gguf(path, n_ctx=len(ids) + 1, threads=threads)
    got = torch.from_numpy(gguf_logits(llm, ids))
    llm.close()
    return (got.argmax(-1) == expected.argmax(-1)).float().mean().item(), (got - expected).abs().max().item()


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

    ids = heldout_ids(args.model, args.prompt)
    expected = reference_logits(args.model, ids)
    folder = sum(p.stat().st_size for p in args.model.glob("*.safetensors"))
    tmp = tempfile.TemporaryDirectory()
    rows = [{"runtime": "transformers+emo_cpu", "dtype": "fp32", "bytes": folder, "top1": 1.0, "max_diff": 0.0}]
    runners = [TransformersRunner(args.model, ids, args.decode)]
    for dtype in DTYPES:
        result = export_gguf(args.model, Path(tmp.name) / f"{dtype}.gguf", dtype=dtype, threads=args.threads)
        top1, diff = agreement(Path(result.path), ids, expected, args.threads)
        rows.append({"runtime": "llama.cpp", "dtype": dtype, "bytes": result.bytes, "top1": top1, "max_diff": diff})
        runners.append(LlamaRunner(Path(result.path), ids, args.decode, args.threads))
    # rounds interleave every runtime, so a shared machine's load changes hit all of them alike
    prompt_s = [float("inf")] * len(runners)
    decode_s = [float("inf")] * len(runners)
    for _ in range(args.repeat):
        for i, runner in enumerate(runners):
            prompt_s[i] = min(prompt_s[i], runner.prompt())
            decode_s[i] = min(decode_s[i], runner.decode())
    for runner in runners:
        runner.close()
    tmp.cleanup()
    for row, p, d in zip(rows, prompt_s, decode_s, strict=True):
        row["prompt_tok_s"], row["decode_tok_s"] = len(ids) / p, args.decode / d
    hf_prompt, hf_decode = rows[0]["prompt_tok_s"], rows[0]["decode_tok_s"]
    for row in rows:
        row["size_vs_safetensors"] = row["bytes"] / folder
        row["prompt_vs_transformers"] = row["prompt_tok_s"] / hf_prompt
        row["decode_vs_transformers"] = row["decode_tok_s"] / hf_decode
    if args.json:
        print(json.dumps({"threads": args.threads, "prompt": args.prompt, "decode": args.decode, "rows": rows}, indent=2))
        return
    print(
        f"{args.model.name}: {args.prompt}-token prompt, {args.decode} decode steps, {args.threads} threads (best of {args.repeat})"
    )
    print(
        f"{'runtime':<22}{'dtype':<8}{'size':>10}{'x st':>7}{'prompt tok/s':>14}{'x tf':>7}{'decode tok/s':>14}{'x tf':>7}{'top-1':>8}{'max diff':>10}"
    )
    for r in rows:
        print(
            f"{r['runtime']:<22}{r['dtype']:<8}{r['bytes'] / 1e6:>8.1f}MB{r['size_vs_safetensors']:>7.2f}"
            f"{r['prompt_tok_s']:>14.0f}{r['prompt_vs_transformers']:>7.2f}{r['decode_tok_s']:>14.0f}{r['decode_vs_transformers']:>7.2f}"
            f"{r['top1']:>8.1%}{r['max_diff']:>10.2g}"
        )


if __name__ == "__main__":
    main()
