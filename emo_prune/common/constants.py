"""Names and defaults that both the library and the CLI's help text use, in a module that imports
nothing: the CLI builds its options from these without importing torch. Each is defined only here."""

# expert selection (emo_prune.select.scores)
PROFILE_METHODS = ("mass", "frequency", "reap", "easy_ep", "coverage")
METHODS = ("mass", "frequency", "reap", "greedy", "random", "easy_ep", "coverage")
COMBINES = ("union", "weighted")

# profiling: tokens per domain, ONE default for `emo-prune profile`, extract's one-step profile and
# recipes (issue 25: they were 1M / 50k / 30k). 30k is the quickstart's budget: its code builds keep
# 96-98% of the original's held-out score; profiling emo-small on it takes DEFAULT_PROFILE_TIME.
DEFAULT_MAX_TOKENS = 30_000
# README's tour measured 8.2 s for two domains on a quiet 2-core CPU; 39 s for one domain under load 7.5
# (`emo-prune profile builtin:emo-small --domain code`, 2026-12-07, a machine shared by 5 sessions)
DEFAULT_PROFILE_TIME = "about 4 s per domain for builtin:emo-small on a quiet 2-core CPU"

# verification (emo_prune.verify): largest allowed |logit difference| in fp32
TOLERANCE = 1e-4

# benchmarks (emo_prune.bench.layer): experts implementations, `eager` first (the baseline)
BENCH_IMPLEMENTATIONS = ("eager", "grouped_mm", "batched_mm", "emo_cpu", "emo_triton")

# fine-tuning (emo_prune.train.finetune): AI2's defaults (allenai/EMO scripts/selective_hf/launch_selective_hf.sh,
# src/hf_training/finetune.py); --train names map to AI2's freeze modes none | routed | routed_shared | routed_shared_router
TRAIN_MODES = ("all", "experts", "experts+shared", "experts+shared+router")
FINETUNE_LR = 5e-5
FINETUNE_BATCH = 32  # sequences per optimizer step, all processes together
FINETUNE_WARMUP = 0.1  # share of the optimizer steps with a linear warmup
FINETUNE_AUX_COEF = 0.01  # load-balancing loss coefficient while fine-tuning
