from emo_prune.version import __version__
