"""Everything that fits a model (``python -m qa train-…``); answering never imports it."""
