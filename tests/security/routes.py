"""Every URL pattern of the project, with sample values for its converters (the route-walking tests)."""

import re
import uuid

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import IntConverter, PathConverter, SlugConverter, StringConverter, UUIDConverter
from django.urls.resolvers import RegexPattern

from core.ids import PublicIdConverter


def sample_value(converter) -> str:
    if isinstance(converter, PublicIdConverter):
        return f"{converter.prefix}_Sample123"
    if isinstance(converter, UUIDConverter):
        # Fixed (no row has it): the test ids must be the same in every xdist worker's collection.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "url-walk-sample"))
    if isinstance(converter, IntConverter):
        return "1"
    if isinstance(converter, (SlugConverter, StringConverter, PathConverter)):
        return "sample"
    raise AssertionError(f"No sample value for converter {converter!r}: add one to the URL walk test")


def walk(patterns, prefix="", namespace=""):
    for pattern in patterns:
        route = str(pattern.pattern)
        if isinstance(pattern.pattern, RegexPattern):
            route = "^" + route.lstrip("^")
        converters = getattr(pattern.pattern, "converters", {})
        if isinstance(pattern, URLResolver):
            ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, prefix + fill(route, converters), ns)
        elif isinstance(pattern, URLPattern):
            yield prefix + fill(route, converters), f"{namespace}{pattern.name}", pattern.callback


def fill(route: str, converters) -> str:
    if route.startswith("^"):  # regex routes (admin's app_list, view_on_site)
        route = route.lstrip("^").rstrip("$")
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", "sample", route).replace(".*", "sample")
        return route.replace("\\", "")

    def replace(match):
        return sample_value(converters[match.group(1)])

    return re.sub(r"<(?:\w+:)?(\w+)>", replace, route)


ROUTES = sorted(set(walk(get_resolver().url_patterns)), key=lambda r: r[0])


def methods(callback):
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:
        return ["get", "post"]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)] or ["get"]


