"""A workspace: a folder that remembers its model and what was made in it (state.py: `emo-prune.json`),
so `profile`, `extract` and `eval` work as typed there. It sits above `pipeline/`: a recipe in the folder
names the model too."""
