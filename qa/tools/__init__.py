"""The command line, evaluation, benchmarks and the chat's feedback file: tools over ``qa.engine``."""
