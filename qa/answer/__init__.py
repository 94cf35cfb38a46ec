"""One question → one Answer: retrieve → candidates → read → choose → judge → compose (``pipeline.py``)."""
