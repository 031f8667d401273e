"""Small torch-free helpers every layer may use: names and defaults shared by the library and the CLI's
help (constants.py), text for the user's eyes (text.py: plural, inert),
sizes, counts and durations with their units (units.py), lazy package namespaces (lazy.py),
where lm-eval's tasks live and their index, shared by calibration and eval (lmeval_tasks.py)."""
