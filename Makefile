# Two commands do all the set-up on a fresh machine:
#   make run    install into .venv, then start the chat on the bundled corpus
#   make test   install into .venv, then run the tests
PYTHON ?= python3
VENV ?= .venv
# Test workers (pytest-xdist): each runs whole test modules, so a module's fixtures are built once.
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test index eval

# The project itself, editable, with its test extra: its dependencies are requirements.txt and
# requirements-test.txt (pyproject.toml reads them), and .venv/bin/citeqa is `python -m qa`.
$(INSTALLED): pyproject.toml requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

run: $(INSTALLED)
	$(BIN)/streamlit run app.py

test: $(INSTALLED)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

index: $(INSTALLED)
	$(BIN)/python -m qa build

eval: $(INSTALLED)
	$(BIN)/python -m qa eval eval/dev.jsonl
