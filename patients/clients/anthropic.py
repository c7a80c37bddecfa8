"""Anthropic's Messages API, thin: no ORM, no settings (patients.services.assistant passes them).

`POST {base_url}/v1/messages` with headers `x-api-key`, `anthropic-version` and JSON
`{"model", "max_tokens", "system", "messages": [{"role": "user"|"assistant", "content": "..."}]}`; the
answer is `{"type": "message", "role": "assistant", "content": [{"type": "text", "text": "..."}],
"stop_reason", ...}`. The text blocks are joined.

Through `core.outbound.guarded_request` with `user_supplied=False` (the base URL is ours,
MARK_RESPONDER_BASE_URL): timeouts, no redirects, response size cap. Errors carry short codes only
("anthropic_http_429", "anthropic_timeout"): never the key, the prompt or the answer.
"""

from __future__ import annotations

import json

from core.outbound import OutboundError, OutboundTimeoutError, ResponseTooLargeError, guarded_request

API_VERSION = "2023-06-01"
MAX_RESPONSE_BYTES = 1024 * 1024
ROLES = ("user", "assistant")


class ResponderError(Exception):
    """A responder call failed. `code` is short and content-free."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class AnthropicClient:
    def __init__(self, *, api_key: str, model: str, base_url: str = "https://api.anthropic.com", timeout=None):
        if not api_key:
            raise ResponderError("anthropic_not_configured")
        self.api_key = api_key
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:  # never print the key
        return f"AnthropicClient(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def complete(self, *, system: str, messages: list[dict[str, str]], max_tokens: int = 400) -> str:
        """The assistant's text for the conversation `messages` (alternating roles, the first and last
        "user"). Raises ResponderError."""
        if not messages or messages[0]["role"] != "user" or messages[-1]["role"] != "user":
            raise ResponderError("anthropic_bad_conversation")
        if any(message["role"] not in ROLES for message in messages):
            raise ResponderError("anthropic_bad_conversation")
        payload = {"model": self.model, "max_tokens": max_tokens, "system": system, "messages": messages}
        headers = {
            "x-api-key": self.api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
        }
        try:
            response = guarded_request(
                "POST",
                self.url,
                headers=headers,
                content=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                timeout=self.timeout,
                max_bytes=MAX_RESPONSE_BYTES,
                user_supplied=False,
            )
        except ResponseTooLargeError:
            raise ResponderError("anthropic_response_too_large") from None
        except OutboundTimeoutError:
            raise ResponderError("anthropic_timeout") from None
        except OutboundError:
            raise ResponderError("anthropic_connection_error") from None
        if response.status_code != 200:
            raise ResponderError(f"anthropic_http_{response.status_code}")
        try:
            data = json.loads(response.content)
            blocks = data["content"]
            text = "".join(block["text"] for block in blocks if isinstance(block, dict) and block.get("type") == "text")
        except (ValueError, KeyError, TypeError):
            raise ResponderError("anthropic_bad_response") from None
        if not isinstance(text, str) or not text.strip():
            raise ResponderError("anthropic_empty_response")
        return text.strip().replace("\x00", "")
