# Two commands do all the set-up on a fresh machine:
#   make run    install into .venv, then start the chat on the bundled corpus
#   make test   install into .venv, then run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test index eval

$(INSTALLED): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

run: $(INSTALLED)
	$(BIN)/streamlit run app.py

test: $(INSTALLED)
	$(BIN)/python -m pytest

index: $(INSTALLED)
	$(BIN)/python -m qa build

eval: $(INSTALLED)
	$(BIN)/python -m qa eval eval/dev.jsonl
