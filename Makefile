# omnijourney developer commands. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_DATA := .omnijourney-test

.DEFAULT_GOAL := help
.PHONY: help install demo test lint format typecheck check bench up down clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml deploy/kafka/pom.xml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/omnijourney kafka fetch
	touch $(STAMP)

install: $(STAMP) ## create .venv, install omnijourney and resolve the Kafka jars

demo: $(STAMP) ## the main job: start the stack, run the omnichannel demo, print the journey report
	$(BIN)/omnijourney demo

test: $(STAMP) ## the whole test suite (real Kafka and embedded ClickHouse of its own: .omnijourney-test)
	$(BIN)/pytest

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## apply ruff format and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy (strict on the core)
	$(BIN)/mypy

check: lint typecheck test ## everything CI runs

bench: $(STAMP) ## run the benchmarks in bench/
	$(BIN)/python -m bench

up: $(STAMP) ## start local Kafka and embedded ClickHouse
	$(BIN)/omnijourney up

down: ## stop everything omnijourney started (the test suite's stack too)
	-$(BIN)/omnijourney down
	-$(BIN)/omnijourney --data-dir $(TEST_DATA) down

clean: down ## remove the virtualenv and all local data
	rm -rf $(VENV) .omnijourney $(TEST_DATA)
