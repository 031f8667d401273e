"""Export formats and weight types by name (no heavy imports: the CLI and the recipe schema read these)."""

FORMATS = ("gguf",)
DIRECT_DTYPES = ("f32", "f16", "bf16", "q8_0")  # encoded by emo-prune with the gguf package
K_QUANT_DTYPES = ("q4_k_m", "q5_k_m", "q6_k")  # made by llama.cpp's own quantizer (llama-cpp-python)
DTYPES = DIRECT_DTYPES + K_QUANT_DTYPES
