"""Documents of the hand-made tasks t_ppl and t_mc (conftest.task_dir) that the tests score by hand."""

PPL_DOCS = [
    "def add(a, b):\n    return a + b\n",
    "The experts that a domain never uses can be removed.",
    "Question: What is 6 * 7? Answer: 6 * 7 = 42.",
]
MC_DOCS = [
    {"question": "What is 2 + 2?", "choices": ["4", "5", "22"], "label": 0},
    {"question": "What is 3 * 3?", "choices": ["6", "9"], "label": 1},
    {"question": "Solve x + 1 = 3.", "choices": ["x = 1", "x = 2", "x = 3", "x = 4"], "label": 1},
]
