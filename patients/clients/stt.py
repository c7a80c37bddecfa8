"""Speech-to-text for voice messages, OpenAI-compatible and thin: no ORM, no settings (the caller passes
them; patients.services.messages.voice_transcribe decides whether to call).

`POST {base_url}/v1/audio/transcriptions`, multipart/form-data: `file` (the audio), `model`,
`response_format=json` and an optional `language` (ISO 639-1); `Authorization: Bearer <api key>`.
The answer is `{"text": "..."}` (OpenAI, and the many servers that copy its API: whisper.cpp server,
faster-whisper servers, Groq, LocalAI...).

Through `core.outbound.guarded_request` with `user_supplied=False` (the base URL is ours): timeouts, no
redirects, response size cap. Errors carry short codes only ("stt_http_401", "stt_timeout"): never the
key, the audio or the text.
"""

from __future__ import annotations

import json
import re
import secrets

from core.outbound import OutboundError, OutboundTimeoutError, ResponseTooLargeError, guarded_request

MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's own limit
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_TEXT = 20_000
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}")


class SpeechToTextError(Exception):
    """A transcription failed. `code` is short and content-free."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


def multipart_body(fields: dict[str, str], *, file_field: str, filename: str, content_type: str, data: bytes):
    """(body bytes, Content-Type header) of a multipart/form-data request."""
    boundary = f"mark-{secrets.token_hex(16)}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(file_field)}"; '
            f'filename="{_quote(filename)}"\r\nContent-Type: {content_type}\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class OpenAITranscriptionClient:
    def __init__(self, *, base_url: str, api_key: str, model: str, timeout: float | None = None):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout

    def __repr__(self) -> str:  # never print the key
        return f"OpenAITranscriptionClient(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/audio/transcriptions"

    def transcribe(self, *, data: bytes, filename: str, content_type: str, language: str | None = None) -> str:
        """The text of the audio ("" for silence). Raises SpeechToTextError."""
        if not data:
            raise SpeechToTextError("stt_empty_audio")
        if len(data) > MAX_AUDIO_BYTES:
            raise SpeechToTextError("stt_audio_too_large")
        fields = {"model": self.model, "response_format": "json"}
        base_language = (language or "").split("-")[0].lower()
        if _LANGUAGE_RE.fullmatch(base_language):
            fields["language"] = base_language
        body, content_type_header = multipart_body(
            fields, file_field="file", filename=filename, content_type=content_type, data=data
        )
        headers = {"Content-Type": content_type_header, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            response = guarded_request(
                "POST",
                self.url,
                headers=headers,
                content=body,
                timeout=self.timeout,
                max_bytes=MAX_RESPONSE_BYTES,
                user_supplied=False,
            )
        except ResponseTooLargeError:
            raise SpeechToTextError("stt_response_too_large") from None
        except OutboundTimeoutError:
            raise SpeechToTextError("stt_timeout") from None
        except OutboundError:
            raise SpeechToTextError("stt_connection_error") from None
        if response.status_code != 200:
            raise SpeechToTextError(f"stt_http_{response.status_code}")
        try:
            text = json.loads(response.content)["text"]
        except (ValueError, KeyError, TypeError):
            raise SpeechToTextError("stt_bad_response") from None
        if not isinstance(text, str):
            raise SpeechToTextError("stt_bad_response")
        return text.strip()[:MAX_TEXT].replace("\x00", "")
