# Two commands: `make demo` builds the whole mesh at the small scale, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= small
STAMP := $(VENV)/.installed

.PHONY: demo test install lint contracts format clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

demo: $(STAMP) ## install, build the whole mesh at SCALE (default small), print how to open each UI
	$(BIN)/mesh build --scale $(SCALE)

test: $(STAMP) ## install if needed and run the whole test suite
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

contracts: $(STAMP) ## breaking-change gate on ODCS + OpenAPI contracts; committed OpenAPI is current
	$(BIN)/mesh contracts openapi --check
	$(BIN)/mesh contracts check

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## benchmark data generation (figures go to docs/benchmarks.md)
	$(BIN)/python benchmarks/generate.py --scales small medium

clean: ## delete generated data (not the venv)
	rm -rf data/lakehouse data/simulation data/feast data/mlflow data/lineage data/runs data/access data/tmp
