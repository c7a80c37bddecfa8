# Healthcare integration platform: `make run` starts everything, `make test` runs the suite.
# GNU make. The virtualenv lives in .venv and is (re)installed only when a requirements file changes.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

# Web port and address for `make run` (honcho hands PORT to the first Procfile entry, web). The web listens
# on 127.0.0.1 only unless HOST says otherwise (`make run HOST=0.0.0.0`): the demo admin password is public.
# DATABASE_URL, REDIS_URL and every other setting pass through the environment untouched (see README).
PORT ?= 8000
HOST ?= 127.0.0.1
export PORT HOST

# pytest arguments, e.g. `make test PYTEST_ARGS="tests/core -x"`.
PYTEST_ARGS ?=

.PHONY: help run test lint check bench clean venv

help:
	@echo "make run    start web (port $(PORT)), celery workers (one per queue) and beat in the foreground (Ctrl-C stops all)"
	@echo "make test   run the whole test suite (pytest)"
	@echo "make lint   ruff check ."
	@echo "make check  Django deploy checks under APP_ENV=production + missing-migration check"
	@echo "make bench  run every benchmark, then one BENCH summary line per measure (BENCH=<name> for one; some need PostgreSQL)"
	@echo "make clean  remove .local (SQLite, broker queue) and staticfiles"

$(PY):
	$(PYTHON3) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_periodic_tasks
	$(PY) manage.py seed_demo --credentials-file .local/demo-credentials.json
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" WEB_PORT=$(PORT) DEMO_CREDENTIALS_FILE=.local/demo-credentials.json \
		$(PY) bin/honcho-start -f Procfile.dev

# The whole suite: two xdist workers (TEST_WORKERS=0 for one process), then the Schemathesis gate in one
# process of its own (its plugin runs no operation inside an xdist worker). Tests that start Celery workers
# or brokers are one xdist group (tests/conftest.py), run one at a time, so two never share a queue.
# With PYTEST_ARGS, just those, in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	@if [ -n "$(strip $(PYTEST_ARGS))" ]; then exec $(VENV)/bin/pytest $(PYTEST_ARGS); fi; \
	status=0; \
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup --ignore=tests/gates || status=$$?; \
	$(VENV)/bin/pytest tests/gates || status=$$?; \
	exit $$status

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Throwaway production values, generated per run: the checks need them set, not secret.
check: $(STAMP)
	APP_ENV=production \
	SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
	FIELD_ENCRYPTION_KEYS="$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
	BLIND_INDEX_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(32))')" \
	ALLOWED_HOSTS=example.com \
	REDIS_URL=redis://127.0.0.1:6379/0 \
	$(PY) manage.py check --deploy --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run

# Every bench/*.py script (files starting with "_" are helpers, not benchmarks), or only those named in
# BENCH: a bare name (`make bench BENCH=loverescue_api`) or a path (`BENCH=bench/loverescue_api.py`).
# Runs all, fails if any failed, and ends with the summary: every `BENCH <name> ratio=<x> target=<op><y>
# ok|miss` line the scripts printed (bench/_harness.py `report`), one per measure.
# careos_ingest, loverescue_api, mark_api and therapist_api need PostgreSQL (their summary lines say "not-run"
# without it):
#   make bench BENCH=loverescue_api DATABASE_URL=postgres://postgres@127.0.0.1:5432/lr_bench \
#        REDIS_URL=redis://127.0.0.1:6379/0      (a database of its own: its data set stays there)
BENCH ?=
bench: $(STAMP)
	@shopt -s nullglob; scripts=(); \
	if [ -z "$(strip $(BENCH))" ]; then wanted=(bench/*.py); else wanted=(); \
		for name in $(BENCH); do case "$$name" in */*) ;; *.py) name="bench/$$name";; *) name="bench/$$name.py";; esac; \
			[ -f "$$name" ] || { echo "No benchmark $$name (bench/ has: $$(cd bench && ls [!_]*.py | sed 's/\.py$$//' | tr '\n' ' '))"; exit 2; }; \
			wanted+=("$$name"); done; fi; \
	for f in "$${wanted[@]}"; do case "$$(basename "$$f")" in _*) ;; *) scripts+=("$$f");; esac; done; \
	if [ $${#scripts[@]} -eq 0 ]; then echo "No benchmarks: bench/ has no *.py scripts yet."; exit 0; fi; \
	summary="$$(mktemp)"; trap 'rm -f "$$summary"' EXIT; failed=0; \
	for f in "$${scripts[@]}"; do \
		echo "== $$f"; \
		PYTHONPATH="$(CURDIR)" PYTHONUNBUFFERED=1 $(PY) "$$f" | tee -a "$$summary"; \
		[ "$${PIPESTATUS[0]}" -eq 0 ] || { echo "!! $$f failed"; echo "BENCH-FAILED $$f" >> "$$summary"; failed=1; }; \
	done; \
	echo; echo "== summary"; \
	grep '^BENCH ' "$$summary" || echo "(no BENCH lines)"; \
	grep '^BENCH-FAILED ' "$$summary" | sed 's/^BENCH-FAILED /!! failed, no summary line for its measures after the failure: /'; \
	exit $$failed

clean:
	rm -rf .local staticfiles
