"""The layering rules of docs/architecture.md, checked on the source (ast, nothing imported):

- views (`<app>/api/*.py`) never touch the ORM: no `.objects`, no queryset-building calls;
- services (`<app>/services.py`, `<app>/services/*.py`) know no HTTP: no import of core.errors (ApiError),
  rest_framework or django.http;
- no app keeps a private copy of a core helper that the convention replaced (validated(), key_digest,
  phone parsing with phonenumbers outside core.phones).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "audit", "webhooks", "messaging", "integration", "leads", "patients", "sync", "sessions_analytics")
ORM_ATTRIBUTES = {"objects", "select_related", "prefetch_related", "annotate", "values_list", "select_for_update"}
HTTP_MODULES = ("core.errors", "rest_framework", "django.http")


def _modules(pattern: str) -> list[Path]:
    found: list[Path] = []
    for app in APPS:
        found.extend(sorted((ROOT / app).glob(pattern)))
    return [path for path in found if "migrations" not in path.parts]


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
    return names


def orm_uses(source: str) -> list[str]:
    tree = ast.parse(source)
    return [
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ORM_ATTRIBUTES
    ]


def http_imports(source: str) -> list[str]:
    return [
        f"line {line}: import {name}"
        for line, name in _imports(ast.parse(source))
        if any(name == module or name.startswith(module + ".") for module in HTTP_MODULES)
    ]


def test_the_checks_can_fail():
    assert orm_uses("def get(self, request):\n    return Client.objects.filter(x=1)\n") == ["line 2: .objects"]
    assert orm_uses("def get(self, request):\n    return selectors.client_list(therapist=t)\n") == []
    assert http_imports("from core.errors import ApiError\nimport rest_framework.exceptions\n") == [
        "line 1: import core.errors",
        "line 2: import rest_framework.exceptions",
    ]
    assert http_imports("from core.domain import NotFound\n") == []


@pytest.mark.parametrize("path", _modules("api/*.py"), ids=lambda p: str(p.relative_to(ROOT)))
def test_views_do_not_touch_the_orm(path):
    assert orm_uses(path.read_text()) == [], f"{path.relative_to(ROOT)} reaches the ORM: use a selector or service"


@pytest.mark.parametrize(
    "path", _modules("services.py") + _modules("services/*.py"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_services_know_no_http(path):
    assert http_imports(path.read_text()) == [], f"{path.relative_to(ROOT)}: raise core.domain errors instead"


def _defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_no_private_copies_of_core_helpers():
    copies = []
    for path in _modules("**/*.py"):
        defined = _defined_functions(path)
        for name in ("validated", "key_digest", "normalize_e164", "mask_phone"):
            if name in defined:
                copies.append(f"{path.relative_to(ROOT)} defines {name}()")
        if any(name == "phonenumbers" for _, name in _imports(ast.parse(path.read_text()))):
            copies.append(f"{path.relative_to(ROOT)} parses phones itself (use core.phones)")
    assert copies == []
