# Caseline: two commands on a fresh machine.
#   make run   installs, migrates, seeds the demo and serves http://127.0.0.1:8000
#   make test  installs the dev dependencies and runs the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py seed_demo
	@echo
	@echo "  Caseline is starting at http://$(HOST):$(PORT)/"
	@echo "  Demo login: agent@demo.caseline.test / caseline-demo  (supervisor@..., admin@... same password)"
	@echo
	@if [ -n "$$REDIS_URL" ]; then \
		DEBUG=$${DEBUG:-true} $(BIN)/celery -A config worker -B --loglevel=INFO --concurrency=2 & \
		trap 'kill %1' EXIT; \
		DEBUG=$${DEBUG:-true} $(BIN)/python manage.py runserver $(HOST):$(PORT); \
	else \
		DEBUG=$${DEBUG:-true} $(BIN)/python manage.py runserver $(HOST):$(PORT); \
	fi

test: install
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/caseline} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3 test_db.sqlite3 staticfiles
