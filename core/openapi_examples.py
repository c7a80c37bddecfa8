"""Examples and tag descriptions in the OpenAPI document, attached by one drf-spectacular postprocessing hook.

Each API keeps its example data next to its views, in `<app>/api/examples.py`: a module-level
`EXAMPLES = {operationId: OperationExamples(request=..., responses={status: ...})}`. `attach_examples`
(SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) puts them into the generated schema, keyed by operationId.
An error response an API module gives no example for gets one rendered by that API's own error renderer
(core.apis), so it is the body the API really sends. Each tag's description is its prose from
SPECTACULAR_SETTINGS["TAGS"] (who calls it, how to authenticate, where the docs are) followed by its error body
and rate limits, generated from the views' declarations so they cannot drift from what the code enforces.
tests/core/test_openapi_examples.py checks that every operation has examples and that each is valid.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from django.apps import apps
from django.utils.module_loading import module_has_submodule

from core.apis import ApiFamily, family_for_path
from core.errors import ApiError
from core.ratelimit import RatePolicy, RateUsage, key_ip, key_principal, key_user, key_user_or_ip

HTTP_METHODS = ("get", "put", "post", "patch", "delete")
EXAMPLES_MODULE = "api.examples"
# Fixed values so the document is the same on every request (error bodies carry a timestamp).
EXAMPLE_TIME = "2026-11-30T09:15:00Z"
EXAMPLE_RESET_EPOCH = 1796030100  # 2026-11-30T09:15:00Z
EXAMPLE_RETRY_AFTER = 60


@dataclass(frozen=True)
class Example:
    """One named example; a bare value is also accepted wherever an example is."""

    value: Any
    summary: str = ""
    description: str = ""


@dataclass(frozen=True)
class ByMediaType:
    """Different examples per media type of one response (e.g. an export as JSON and as CSV)."""

    examples: dict[str, Any]


@dataclass(frozen=True)
class OperationExamples:
    """`request`: the body (a value, an Example, or a list of Examples); `responses`: status -> the same."""

    request: Any = None
    responses: dict[int, Any] = field(default_factory=dict)


def collected_examples() -> dict[str, OperationExamples]:
    """operationId -> OperationExamples, from every installed app's `api/examples.py` and core's own."""
    collected: dict[str, OperationExamples] = dict(PLATFORM_EXAMPLES)
    for config in apps.get_app_configs():
        if not module_has_submodule(config.module, "api"):
            continue
        package = importlib.import_module(f"{config.name}.api")
        if not module_has_submodule(package, "examples"):
            continue
        module = importlib.import_module(f"{config.name}.{EXAMPLES_MODULE}")
        for operation_id, examples in module.EXAMPLES.items():
            if operation_id in collected:
                raise ValueError(f"Examples for {operation_id} are declared twice ({module.__name__})")
            collected[operation_id] = examples
    return collected


def _as_examples(value: Any, default_summary: str) -> dict:
    items = value if isinstance(value, list) else [value]
    named = {}
    for index, item in enumerate(items):
        example = item if isinstance(item, Example) else Example(item)
        summary = example.summary or default_summary
        key = re.sub(r"[^a-z0-9]+", "-", summary.lower()).strip("-") or f"example-{index + 1}"
        entry = {"summary": summary, "value": example.value}
        if example.description:
            entry["description"] = example.description
        named[key if key not in named else f"{key}-{index + 1}"] = entry
    return named


def _view_classes(generator) -> dict[tuple[str, str], type]:
    return {(path, method.lower()): getattr(callback, "cls", None) for path, _, method, callback in generator.endpoints}


def _family_of(view_class, path: str) -> ApiFamily | None:
    return getattr(view_class, "api_family", None) or family_for_path(path)


def _rate_policy_of(view_class, family: ApiFamily | None) -> RatePolicy | None:
    policy = getattr(view_class, "rate_policy", None)
    return policy if policy is not None else (family.rate_policy if family else None)


def _example_path(path: str, operation: dict) -> str:
    """The operation's path with an example value in each parameter, as an error body's `path` shows it."""
    schemas = {p["name"]: p.get("schema", {}) for p in operation.get("parameters", []) if p.get("in") == "path"}

    def value(match: re.Match) -> str:
        schema = schemas.get(match.group(1), {})
        prefix = re.match(r"\^([a-z]+)_", schema.get("pattern", ""))
        if prefix:
            return f"{prefix.group(1)}_7Hq2Lx9VbN4cT1mR8sKd3WzE"
        if schema.get("format") == "uuid":
            return "3f6c2a8e-5b1d-4c7a-9e2f-8d4b6a1c0e95"
        return "example"

    return re.sub(r"\{([^}]+)\}", value, path)


def error_example(family: ApiFamily, status: int, path: str, policy: RatePolicy | None = None) -> dict:
    """The body `family` answers `status` with (default message), exactly as its renderer writes it."""
    headers = {"Retry-After": str(EXAMPLE_RETRY_AFTER)} if status == 429 else {}
    limit = policy.rates[0].limit if policy and policy.rates else 0
    request = SimpleNamespace(
        path=path, ratelimit_usage=RateUsage(limit=limit, remaining=0, reset_at=EXAMPLE_RESET_EPOCH, limited=True)
    )
    body = family.render(request, ApiError(status, headers=headers))
    if "timestamp" in body:
        body["timestamp"] = EXAMPLE_TIME
    return body


def _illustrated(media_type: str) -> bool:
    # Files (PDF, audio) are not shown as examples; JSON, forms and text are.
    return "json" in media_type or media_type.startswith(("application/x-www-form", "multipart/", "text/"))


def _summary(response: dict, status: str) -> str:
    # Descriptions can be long prose; the summary is the first sentence, short enough for a tab.
    description = (response.get("description") or "").split(". ")[0].split(" (")[0]
    return description if description and len(description) <= 60 else f"{status} response"


def attach_examples(result: dict, generator, request, public, **kwargs) -> dict:
    """drf-spectacular postprocessing hook: examples on every operation, then the tag descriptions."""
    declared = collected_examples()
    views = _view_classes(generator)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            examples = declared.get(operation.get("operationId"), OperationExamples())
            view_class = views.get((path, method))
            family = _family_of(view_class, path)
            if examples.request is not None:
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    media.setdefault("examples", _as_examples(examples.request, "Request"))
            for status, response in operation.get("responses", {}).items():
                content = response.get("content") or {}
                value = examples.responses.get(int(status))
                if value is None and int(status) >= 400 and family is not None:
                    body = error_example(
                        family, int(status), _example_path(path, operation), _rate_policy_of(view_class, family)
                    )
                    value = Example(body, summary=_summary(response, status))
                if value is None:
                    continue
                for media_type, media in content.items():
                    example = value.examples.get(media_type) if isinstance(value, ByMediaType) else value
                    if example is not None and (isinstance(value, ByMediaType) or _illustrated(media_type)):
                        media.setdefault("examples", _as_examples(example, _summary(response, status)))
    describe_tags(result, views)
    return result


# --- Tag descriptions -------------------------------------------------------------------------------------------

_PERIODS = {60: "minute", 3600: "hour", 86400: "day"}
_KEYS = {
    key_ip: "per client IP address",
    key_user: "per user",
    key_user_or_ip: "per user (per client IP address before sign-in)",
    key_principal: "per credential",
}


def _period(seconds: int) -> str:
    if seconds in _PERIODS:
        return _PERIODS[seconds]
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def describe_rate_policy(policy: RatePolicy | None) -> str:
    if policy is None or not policy.rates:
        return "not rate limited"
    parts = []
    for rate in policy.rates:
        text = f"{rate.limit} requests per {_period(rate.period_seconds)} {_KEYS.get(rate.key, 'per caller')}"
        if rate.limit_override is not None:
            text += " (or the partner's own configured limit)"
        parts.append(text)
    return "; ".join(parts)


def _rate_headers_line(family: ApiFamily) -> str:
    reset = "ISO 8601 time" if family.reset_format == "iso" else "epoch seconds"
    retry = "on every response" if family.retry_after_always else "on a 429"
    return (
        f"Responses carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` ({reset}); "
        f"`Retry-After` (seconds) {retry}."
    )


def _tag_facts(result: dict, views: dict) -> dict[str, dict]:
    """tag -> {"families": {family name: (family, example path)}, "policies": {policy: [operation labels]}}."""
    facts: dict[str, dict] = {}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS or not operation.get("tags"):
                continue
            tag = facts.setdefault(operation["tags"][0], {"families": {}, "policies": {}})
            view_class = views.get((path, method))
            family = _family_of(view_class, path)
            has_errors = any(int(status) >= 400 for status in operation.get("responses", {}))
            if family is not None and has_errors:
                tag["families"].setdefault(family.name, (family, _example_path(path, operation)))
            policy = _rate_policy_of(view_class, family)
            tag["policies"].setdefault(policy, []).append(f"`{method.upper()} {path}`")
    return facts


def _describe_tag(prose: str, facts: dict) -> str:
    sections = [prose.strip()] if prose else []
    families = list(facts["families"].values())
    for family, path in families:
        body = json.dumps(error_example(family, 401, path), indent=2)
        where = f" (`{'`, `'.join(family.prefixes)}`)" if len(families) > 1 else ""
        sections.append(
            f"**Error body**{where}, for every failure (400, 401, 403, 404, 405, 415, 429, 500):\n\n"
            f"```json\n{body}\n```"
        )
    policies = sorted(facts["policies"].items(), key=lambda entry: -len(entry[1]))
    lines = []
    for index, (policy, operations) in enumerate(policies):
        scope = f" on {', '.join(operations)}" if index else (" on every other operation" if len(policies) > 1 else "")
        lines.append(f"- {describe_rate_policy(policy)}{scope}")
    if lines:
        sections.append("**Rate limits**:\n\n" + "\n".join(lines))
    limited = [family for family, _ in families if family.rate_policy is not None]
    for family in limited[:1]:
        sections.append(_rate_headers_line(family))
        if family.auth_failures is not None:
            failures = family.auth_failures
            sections.append(
                f"After {failures.per_ip} failed authentication attempts from one address within "
                f"{_period(failures.period_seconds)}, that address is answered 429 for the rest of the window."
            )
    return "\n\n".join(sections)


def describe_tags(result: dict, views: dict) -> None:
    facts = _tag_facts(result, views)
    # New dicts: the generator hands over the settings' own, which must keep their prose only.
    result["tags"] = [
        {**tag, "description": _describe_tag(tag.get("description", ""), facts[tag["name"]])}
        if tag["name"] in facts
        else dict(tag)
        for tag in result.get("tags", [])
    ]


# --- The platform's own routes (core.views): `/` and `/health` ------------------------------------------------

PLATFORM_EXAMPLES: dict[str, OperationExamples] = {
    "root": OperationExamples(
        responses={
            200: {
                "message": "Routiq Backend API",
                "version": "1.0.0",
                "status": "healthy",
                "timestamp": EXAMPLE_TIME,
                "docs": "/docs",
                "redoc": "/redoc",
            }
        }
    ),
    "health": OperationExamples(
        responses={
            200: [
                Example(
                    {
                        "status": "healthy",
                        "timestamp": EXAMPLE_TIME,
                        "version": "1.0.0",
                        "environment": {
                            "APP_ENV": "production",
                            "PORT": "8000",
                            "authentication_configured": True,
                            "database_configured": True,
                            "encryption_configured": True,
                        },
                    },
                    summary="Anyone",
                ),
                Example(
                    {
                        "status": "healthy",
                        "timestamp": EXAMPLE_TIME,
                        "version": "1.0.0",
                        "environment": {
                            "APP_ENV": "development",
                            "PORT": "8000",
                            "authentication_configured": False,
                            "database_configured": True,
                            "encryption_configured": True,
                        },
                        "configuration_problems": {"SECRET_KEY": "is the development default"},
                    },
                    summary="Staff signed in to the admin (development keys)",
                ),
            ]
        }
    ),
}
