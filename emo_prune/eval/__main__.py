"""`python -m emo_prune.eval ...` is lm-eval's own CLI with the `emo-prune` model type registered:

    python -m emo_prune.eval run --model emo-prune --model_args pretrained=DIR,impl=emo_cpu \
        --tasks emo_ppl_code --include_path recipes/tasks

(`lm_eval --model emo-prune` cannot find the class: lm-eval 0.4.13 loads no plugins.)
"""

from lm_eval.__main__ import cli_evaluate

import emo_prune.eval.lm  # noqa: F401  (registers the model type)

if __name__ == "__main__":
    cli_evaluate()
