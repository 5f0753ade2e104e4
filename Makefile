# Berth. The real work is in deploy/*.sh; these targets are thin wrappers.
#   make run        bring everything up and run Berth at http://127.0.0.1:8000
#   make test       ruff, lint-imports + pytest against PostgreSQL, Redis and a Docker engine
#                   (pass pytest arguments with ARGS="-k hosts -x")
#   make lint       ruff check + ruff format --check + lint-imports (the import layers)
#   make format     ruff format + ruff check --fix
#   make bootstrap  Debian packages and the .venv only
#   make clean      stop what `make run` / `make test` left running (the engine only if Berth started it)
#   make vendor-static  refresh static/vendor/ from the npm registry

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
LIB := source deploy/lib.sh
VENV := .venv
ARGS ?=

.PHONY: run test lint format bootstrap clean vendor-static

run:
	bash deploy/run.sh

test:
	bash deploy/test.sh $(ARGS)

bootstrap:
	$(LIB) && berth_ensure_packages && berth_ensure_venv

lint:
	$(LIB) && berth_ensure_venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format:
	$(LIB) && berth_ensure_venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	$(LIB) && berth_stop run 60 && for name in "$${BERTH_SERVICES[@]}" "$${BERTH_TAILS[@]}"; do berth_stop "$$name" 20; done && berth_frontier_stop && berth_registry_stop && berth_engine_stop

vendor-static:
	bash deploy/vendor-static.sh
