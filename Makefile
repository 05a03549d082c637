# qtrain: `make run` trains the default experiment, `make test` runs the suite.
# Both create .venv and install the project into it on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=

.PHONY: install run test test-slow test-all lint format bench clean mlflow-ui sweep

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

run: $(INSTALLED)  ## train the default experiment (make run ARGS="model=resnet dataset.image_size=32")
	$(PY) -m qtrain $(ARGS)

test: $(INSTALLED)  ## the fast tier, one worker per core (pytest-xdist); add ARGS="-n 0" for one process
	$(PY) -m pytest -n auto --dist worksteal -m "not slow" $(ARGS)

test-slow: $(INSTALLED)  ## the slow tier: accuracy runs, torchrun, sweeps, torch.compile
	$(PY) -m pytest -n auto --dist worksteal -m slow $(ARGS)

test-all: $(INSTALLED)  ## both tiers
	$(PY) -m pytest -n auto --dist worksteal $(ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check qtrain tests benchmarks
	$(VENV)/bin/ruff format --check qtrain tests benchmarks

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix qtrain tests benchmarks
	$(VENV)/bin/ruff format qtrain tests benchmarks

bench: $(INSTALLED)  ## training throughput, input pipeline, quantum head per backend, hybrid step cost; tables in benchmarks/results/
	$(PY) benchmarks/training_throughput.py
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/quantum_head.py
	$(PY) benchmarks/hybrid_step.py

sweep: $(INSTALLED)  ## a small example Optuna sweep: 4 short trials of cnn_quantum, then see them in make mlflow-ui
	$(PY) -m qtrain -m hparams_search=optuna model=cnn_quantum stages.train.epochs=3 hydra.sweeper.n_trials=4 $(ARGS)

mlflow-ui: $(INSTALLED)  ## browse runs at http://127.0.0.1:5000 (the store runs log to: MLFLOW_TRACKING_URI or ./mlflow.db)
	$(VENV)/bin/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port 5000

clean:  ## remove run outputs and caches (not .venv, not data/)
	rm -rf outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path "./$(VENV)/*" -exec rm -rf {} +
