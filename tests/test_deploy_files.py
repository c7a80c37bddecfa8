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
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        assert environment["APP_ENV"] == "production"
        for variable in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY"):
            assert variable in environment, (name, variable)
        for secret in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY", "ALLOWED_HOSTS"):
            assert str(environment[secret]).startswith(f"${{{secret}:?"), f"{name}: {secret} must be required"
    assert "celery -A config worker" in services["worker"]["command"]
    assert "celery -A config beat" in services["beat"]["command"]
    web_command = services["web"]["command"]
    assert "manage.py migrate" in web_command and "config.wsgi:application" in web_command
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


def test_procfile_has_web_worker_beat():
    entries = dict(
        line.split(":", 1) for line in read("Procfile.dev").splitlines() if line.strip() and not line.startswith("#")
    )
    assert set(entries) == {"web", "worker", "beat"}
    assert "runserver 0.0.0.0:" in entries["web"] and "PORT" in entries["web"]


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
    assert "honcho -f Procfile.dev start" in makefile


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
