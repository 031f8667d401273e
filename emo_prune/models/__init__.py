"""Model code emo-prune ships for families stock transformers lacks (EMO)."""
