# The README's two commands:  `make book`  and  `make test`  (and  `make lab`  to explore live).
# Both set up everything they need on a fresh machine (Python 3.11) first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: book book-full check test lint lab setup browser clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# headless Chromium from Debian's packages, for the browser test
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: install Debian's 'chromium' package (the browser test will be skipped)"; fi; }

# incremental: re-executes only the chapters whose source, imported maxpo code or data changed since
# the last build (jupyter-cache in _build/.jupyter_cache; book/_ext/chapter_deps.py decides)
book: $(STAMP)
	$(VENV)/bin/jupyter-book build -W --keep-going .

# from scratch: every page re-read and every chapter executed, no cache (what CI's build test does)
book-full: $(STAMP)
	MAXPO_BOOK_FORCE=1 $(VENV)/bin/jupyter-book build -W --keep-going --all .

# JupyterLab on the book: the chapters' .md files open as notebooks (jupytext; book/_jupyter
# makes that the default viewer). Extra options: make lab LAB_ARGS="--port 8890 --no-browser"
# An existing venv is used as it is (a clone with a reused VENV=..., newer files than its stamp: no rebuild),
# and the kernels import this tree's maxpo (PYTHONPATH), whichever tree the venv was installed from.
LAB_CONFIG := $(CURDIR)/book/_jupyter
lab: $(if $(wildcard $(STAMP)),,$(STAMP))
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" \
	JUPYTER_CONFIG_PATH="$(LAB_CONFIG)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	  $(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# style and types: ruff (pycodestyle, pyflakes, bugbear, isort, pyupgrade) and mypy on maxpo/, zero findings
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# the complete suite (what CI runs): lint, types, every test
test: $(STAMP) browser lint
	$(PY) -m pytest

# the fast tier, after every change: lint, types and every test not marked as needing the book build,
# a browser, JupyterLab, DDP, a GPU, end-to-end training or otherwise slow (markers in pyproject.toml);
# prints its wall time
CHECK_MARKERS := not (book or browser or jupyterlab or ddp or training or gpu or slow)
check: $(STAMP)
	@start=$$(date +%s); \
	  $(VENV)/bin/ruff check . && $(VENV)/bin/mypy && $(PY) -m pytest -q -m "$(CHECK_MARKERS)"; rc=$$?; \
	  echo "make check: $$(( $$(date +%s) - start )) s wall on $$(nproc) cores (load: $$(cut -d' ' -f1-3 /proc/loadavg))"; \
	  exit $$rc

clean:
	rm -rf _build
