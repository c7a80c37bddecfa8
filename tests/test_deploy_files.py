"""The deployment files stay true to the code: every command they run exists, every setting the code
reads is documented in README's table, and the entry points import."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# Files that start processes or run management commands.
COMMAND_FILES = ("docker-compose.yml", "Dockerfile", "Procfile.dev", "Makefile", ".ci/run")
# One Celery worker per queue, in compose and Procfile.dev alike (queues: tests/faults/test_queues.py).
WORKER_SERVICES = (
    "worker-critical",
    "worker-messaging",
    "worker-webhooks",
    "worker-default",
    "worker-batch",
    "worker-sync",
)

_NAME = r"""["']([A-Z][A-Z0-9_]*)["']"""
# env.str("NAME", ...), env.bool(...), env.int(...), env.list(...), env.float(...), env.db(...), env("NAME").
ENV_READ_RE = re.compile(
    r"\benv(?:\.(?:str|bool|int|list|float|db|db_url|json|url|path|dict|tuple|cache|cache_url))?\(\s*" + _NAME
)
OS_ENV_RE = re.compile(r"os\.(?:environ\.get|getenv)\(\s*" + _NAME + r"|os\.environ\[\s*" + _NAME)
README_ROW_RE = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", re.MULTILINE)
MANAGE_RE = re.compile(r"manage\.py\s+([a-z][a-z0-9_]*)")
CELERY_RE = re.compile(r"celery\s+-A\s+config\s+([a-z][a-z0-9_]*)")


def read(relative: str) -> str:
    return (ROOT / relative).read_text(encoding="utf-8")


def settings_env_names() -> set[str]:
    source = read("config/settings.py")
    names = set(ENV_READ_RE.findall(source))
    for match in OS_ENV_RE.finditer(source):
        names.add(match.group(1) or match.group(2))
    return names


def invoked(pattern: re.Pattern) -> set[tuple[str, str]]:
    found = set()
    for name in COMMAND_FILES:
        for command in pattern.findall(read(name)):
            found.add((name, command))
    return found


def test_compose_parses_and_has_the_services():
    compose = yaml.safe_load(read("docker-compose.yml"))
    services = compose["services"]
    workers = WORKER_SERVICES
    assert {"web", *workers, "beat", "postgres", "redis"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("web", *workers, "beat"):
        environment = services[name]["environment"]
        assert environment["APP_ENV"] == "production"
        for variable in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY"):
            assert variable in environment, (name, variable)
        for secret in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY", "ALLOWED_HOSTS"):
            assert str(environment[secret]).startswith(f"${{{secret}:?"), f"{name}: {secret} must be required"
    for name in workers:  # supervised: restarted when they exit, and asked whether they answer
        assert "celery -A config worker" in services[name]["command"], name
        assert services[name]["restart"] == "unless-stopped", name
        assert "celery -A config inspect ping" in " ".join(services[name]["healthcheck"]["test"]), name
    assert services["beat"]["restart"] == "unless-stopped"
    assert "celery -A config beat" in services["beat"]["command"]
    web_command = services["web"]["command"]
    assert "config.wsgi:application" in web_command and "migrate" not in web_command
    # Migrations run once, as the owner role, before web starts; nothing else holds the owner's URL.
    migrate = services["migrate"]
    assert "manage.py migrate" in migrate["command"] and migrate["restart"] == "no"
    assert migrate["environment"]["DATABASE_URL"].startswith("postgres://platform_owner:")
    assert migrate["environment"]["DATABASE_APP_ROLE"] == "platform_app"
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name, service in services.items():
        if name != "migrate" and "DATABASE_URL" in service.get("environment", {}):
            assert service["environment"]["DATABASE_URL"].startswith("postgres://platform_app:"), name
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]
    assert "/health" in " ".join(services["web"]["healthcheck"]["test"])


def test_every_management_command_invoked_exists():
    from django.core.management import get_commands

    commands = get_commands()
    used = invoked(MANAGE_RE)
    assert {command for _, command in used} >= {"migrate", "setup_periodic_tasks", "seed_demo", "collectstatic"}
    missing = sorted(f"{where}: manage.py {command}" for where, command in used if command not in commands)
    assert not missing, f"commands that do not exist: {missing}"


def test_celery_app_and_subcommands():
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.celery import celery as celery_cli

    module = importlib.import_module("config.celery")
    assert isinstance(module.app, Celery)
    assert find_app("config") is module.app  # what `celery -A config` loads
    used = invoked(CELERY_RE)
    assert {command for _, command in used} >= {"worker", "beat"}
    missing = sorted(f"{where}: celery -A config {sub}" for where, sub in used if sub not in celery_cli.commands)
    assert not missing, f"celery subcommands that do not exist: {missing}"


def test_gunicorn_target_imports():
    from django.core.handlers.wsgi import WSGIHandler

    for name in ("Dockerfile", "docker-compose.yml"):
        assert "gunicorn config.wsgi:application" in read(name), name
    module_name, attribute = "config.wsgi:application".split(":")
    assert isinstance(getattr(importlib.import_module(module_name), attribute), WSGIHandler)


def test_dockerfile_runs_as_non_root_in_production():
    dockerfile = read("Dockerfile")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert "pip install -r requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile
    assert re.search(r"^ENV APP_ENV=production", dockerfile, re.MULTILINE)


def procfile_entries() -> dict[str, str]:
    lines = [line for line in read("Procfile.dev").splitlines() if line.strip() and not line.startswith("#")]
    return {name: command.strip() for name, command in (line.split(":", 1) for line in lines)}


def test_procfile_has_web_worker_beat_and_ready_last():
    entries = procfile_entries()
    assert list(entries) == ["web", *WORKER_SERVICES, "beat", "ready"]  # web first: honcho gives it PORT
    for name, command in entries.items():  # honcho's stop signal reaches the program, not a shell before it
        assert command.startswith("exec "), name
    for name in (*WORKER_SERVICES, "beat"):  # honcho restarts nothing: bin/supervise does
        assert entries[name].split()[1] == "bin/supervise", name
    # The demo admin password is public: loopback unless HOST says otherwise.
    assert "runserver ${HOST:-127.0.0.1}:${PORT:-8000}" in entries["web"]
    assert "bin/announce-demo --host ${HOST:-127.0.0.1} --port ${WEB_PORT:-8000}" in entries["ready"]
    for script in ("bin/supervise", "bin/announce-demo", "bin/honcho-start"):
        assert os.access(ROOT / script, os.X_OK), script


def test_make_run_listens_on_host_and_keeps_the_credentials():
    makefile = read("Makefile")
    assert re.search(r"^HOST \?= 127\.0\.0\.1$", makefile, re.MULTILINE)
    assert re.search(r"^export PORT HOST$", makefile, re.MULTILINE)
    run = re.search(r"^run:.*?(?=^\S)", makefile, re.MULTILINE | re.DOTALL).group(0)
    assert "seed_demo --credentials-file .local/demo-credentials.json" in run
    assert "WEB_PORT=$(PORT) DEMO_CREDENTIALS_FILE=.local/demo-credentials.json" in run
    readme = read("README.md")
    assert "make run HOST=0.0.0.0" in readme and ".local/demo-credentials.json" in readme


def test_dockerfile_listens_on_host_which_it_sets():
    dockerfile = read("Dockerfile")
    assert re.search(r"^ENV APP_ENV=production \\\n\s+PORT=8000 \\\n\s+HOST=0\.0\.0\.0$", dockerfile, re.MULTILINE)
    assert "--bind ${HOST}:${PORT:-8000}" in dockerfile and "0.0.0.0:${PORT" not in dockerfile


def test_settings_env_vars_are_in_readme_table():
    names = settings_env_names()
    assert {"APP_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= names  # the regex still finds reads
    documented = set(README_ROW_RE.findall(read("README.md")))
    missing = sorted(names - documented)
    assert not missing, f"README's environment table lacks: {missing}"


def test_makefile_targets():
    makefile = read("Makefile")
    for target in ("run", "test", "lint", "check", "bench", "clean"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    assert "bin/honcho-start -f Procfile.dev" in makefile  # honcho start, with time for warm shutdowns


def test_ci_script_runs_make_test():
    script = read(".ci/run")
    assert re.search(r"^set -euo pipefail$", script, re.MULTILINE)
    assert re.search(r"^\s*make test\b", script, re.MULTILINE)
    assert os.access(ROOT / ".ci/run", os.X_OK)


def test_readme_names_the_two_commands():
    readme = read("README.md")
    assert "make run" in readme and "make test" in readme


@pytest.mark.parametrize("name", ["docs/architecture.md", "docs/operations.md", "docs/decisions.md", ".env.example"])
def test_docs_exist(name):
    assert read(name).strip()


def test_supervise_restarts_its_command_and_stops_with_it(tmp_path):
    """bin/supervise (Procfile.dev's workers and beat) starts its command again after it exits, and a
    SIGTERM to it (honcho's Ctrl-C) stops the command and then itself."""
    import signal
    import subprocess
    import time

    runs = tmp_path / "runs"
    # Exits at once twice (restarted after 1 s, then 2 s); the third run stays up.
    command = f'echo $$ >> {runs}; [ "$(wc -l < {runs})" -ge 3 ] && exec sleep 60; exit 3'
    supervisor = subprocess.Popen([str(ROOT / "bin" / "supervise"), "sh", "-c", command], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not (runs.exists() and len(runs.read_text().split()) >= 3):
            assert supervisor.poll() is None and time.monotonic() < deadline, "not restarted"
            time.sleep(0.1)
        time.sleep(0.2)
        last = int(runs.read_text().split()[-1])
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=10) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(last, 0)  # the command was stopped too, not left behind
        assert supervisor.stderr.read().decode().count("starting it again") == 2
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=5)
