"""Plans and profiles in the formats other tools read and write (`emo-prune plan export / import`).

  registry.py      the formats, as data: consumer, file, source read, what an export needs
  files.py         size-capped reading, strict JSON, checked ids and numbers, the atomic locked write
  vllm.py          vLLM's pruned-experts profile (#42613 / #37824)
  vllm_ascend.py   vLLM-Ascend's expert_list_file (#12525): JSONL, every layer's full ranking
  llama_stats.py   llama.cpp's expert_stats.json (#20454): per-expert statistics
  ai2.py           AI2's pruning_metadata.json
  llmcompressor.py llm-compressor's REAP saliency report (import only)
  run.py           export_plan / import_plan: what the CLI calls

docs/plan-formats.md describes each format and the source it was read from. Torch-free.
"""

from emo_prune.common.lazy import exports_of, lazy_exports

_EXPORTS = exports_of(
    {
        "emo_prune.export.plans.registry": ["EXPORT_FORMATS", "FORMATS", "IMPORT_FORMATS", "PlanFormat"],
        "emo_prune.export.plans.run": ["ExportResult", "export_plan", "import_plan"],
    }
)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
