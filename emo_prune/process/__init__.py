"""The process: its CPU threads and OpenMP wait (threads.py) and its process group under a launcher
(distributed.py), its memory (memory.py). Torch-free at import: the CLI sets threads before any command loads torch."""
