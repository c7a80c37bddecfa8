"""Request bodies as JSON, refused (400) where parsing or storing them would otherwise fail with a 500.

`loads_checked` is the one JSON reading rule: nesting deeper than MAX_JSON_DEPTH (the stdlib parser and
every recursive walk after it raise RecursionError near 1,000 levels) and NUL characters in strings or keys
(PostgreSQL text cannot hold them: DataError at the INSERT) are refused with `JsonRefused`, a ValueError,
so callers that catch bad JSON already catch these. `CheckedJSONParser` is DRF's JSONParser on that rule
(settings: DEFAULT_PARSER_CLASSES); CareOS's own body parser calls `loads_checked` directly.
"""

from __future__ import annotations

import codecs
import json
import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

MAX_JSON_DEPTH = 64

# A \u0000 escape not itself escaped (an even run of backslashes before it). JSON has no "\U" escape.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class JsonRefused(ValueError):
    """Valid JSON that we do not accept (too deep, or NUL in a string)."""


class JsonTooDeep(JsonRefused):
    pass


class JsonHasNul(JsonRefused):
    pass


def _check_nul(text: str) -> None:
    if "\x00" in text or ("\\u0000" in text and _NUL_ESCAPE.search(text)):
        raise JsonHasNul("strings must not contain NUL characters")


def _depth_exceeds(value, max_depth: int) -> bool:
    """Whether parsed JSON nests containers deeper than `max_depth` (iterative: no recursion to overflow)."""
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            return True
        for item in value.values() if value.__class__ is dict else value:
            if item.__class__ is dict or item.__class__ is list:
                stack.append((item, depth + 1))
    return False


def loads_checked(text: str, *, max_depth: int = MAX_JSON_DEPTH, **kwargs):
    """json.loads refusing NUL characters and nesting deeper than `max_depth`; every refusal is a
    ValueError (JsonRefused for ours). Cheap for ordinary bodies: the depth walk runs only when the
    whole text holds more brackets than the limit."""
    _check_nul(text)
    try:
        data = json.loads(text, **kwargs)
    except RecursionError:
        raise JsonTooDeep(f"nested deeper than {max_depth} levels") from None
    deep_enough = text.count("[") + text.count("{") > max_depth
    if deep_enough and data.__class__ in (dict, list) and _depth_exceeds(data, max_depth):
        raise JsonTooDeep(f"nested deeper than {max_depth} levels")
    return data


class CheckedJSONParser(JSONParser):
    """DRF's JSONParser (same media type, same strict NaN/Infinity rule, same "JSON parse error - ..."
    400) with `loads_checked`'s depth and NUL limits."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
            return loads_checked(text, parse_constant=strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
