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

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# A \u0000 escape not itself escaped (an even run of backslashes before it).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


class JsonRefused(ValueError):
    """Valid JSON that we do not accept (too deep, or NUL in a string)."""


class JsonTooDeep(JsonRefused):
    pass


class JsonHasNul(JsonRefused):
    pass


def check_json_text(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse nesting deeper than `max_depth` and NUL characters, before parsing. Cheap for ordinary
    bodies: the bracket scan runs only when there are more brackets than the limit in the whole text."""
    if "\x00" in text or ("\\u0000" in text.lower() and _NUL_ESCAPE.search(text)):
        raise JsonHasNul("strings must not contain NUL characters")
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                raise JsonTooDeep(f"nested deeper than {max_depth} levels")
        else:
            depth -= 1


def loads_checked(text: str, *, max_depth: int = MAX_JSON_DEPTH, **kwargs):
    """json.loads after `check_json_text`; every refusal is a ValueError (JsonRefused for ours)."""
    check_json_text(text, max_depth=max_depth)
    try:
        return json.loads(text, **kwargs)
    except RecursionError:  # unreachable after the depth check; kept so no input can become a 500
        raise JsonTooDeep(f"nested deeper than {max_depth} levels") from None


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
