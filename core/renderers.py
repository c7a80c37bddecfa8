"""The APIs' JSON renderer: DRF's JSONRenderer output, written by orjson (several times faster on a
large body, e.g. a 1,000-client caseload of ~400 KB).

Same bytes as DRF's JSONRenderer (tests/core/test_renderers.py compares them on tricky values):
- compact separators, UTF-8 without escaping non-ASCII, U+2028/U+2029 escaped as DRF does;
- dates, times and datetimes (OPT_PASSTHROUGH_DATETIME), Decimal, lazy strings, sets, generators...:
  converted by DRF's own encoder (`JSONEncoder.default`), then written;
- whatever orjson refuses (a non-str dict key, an int beyond 64 bits, a lone surrogate, nesting deeper
  than 254, an object DRF's encoder cannot convert either) is rendered by DRF's JSONRenderer itself, so
  it gives what it gave before, body or exception;
- an indented rendering (`Accept: application/json; indent=4`), a non-compact or ASCII-only setting:
  DRF's JSONRenderer.

Where the two differ, by orjson's design (no option changes it), and why it is harmless:
- a float below 1e-4 in magnitude is written in plain or shorter exponent form ("0.00001", "1e-7"
  instead of "1e-05", "1e-07"): the same JSON number, parsed to the same double;
- NaN and +-Infinity are written as null, where DRF (STRICT_JSON) raises ValueError (a 500): no API
  produces them (inputs refuse them: core.parsers, DRF's FloatField), so a body never carries one;
- a plain Enum member (neither str nor int) is written as its value, where DRF raises TypeError: none
  reaches a body (choices are TextChoices, str already).
"""

from __future__ import annotations

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

__all__ = ["FastJSONRenderer"]

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_drf_default = JSONEncoder().default


class FastJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if (
            self.ensure_ascii
            or not self.compact
            or self.get_indent(accepted_media_type, renderer_context or {}) is not None
        ):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            body = orjson.dumps(data, default=_drf_default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # DRF's rendering decides: the same body, or the same exception as before.
            return super().render(data, accepted_media_type, renderer_context)
        if b"\xe2\x80\xa8" in body or b"\xe2\x80\xa9" in body:  # U+2028, U+2029 in UTF-8
            body = body.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return body
