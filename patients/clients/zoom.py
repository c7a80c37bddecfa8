"""Zoom's REST API, thin: a server-to-server OAuth token and meetings (create, move, delete). No ORM, no
settings, no cache: patients.services.zoom decides when to call and keeps the token.

- Token: `POST {oauth_base}/oauth/token?grant_type=account_credentials&account_id=...` with HTTP basic
  auth client_id:client_secret (Zoom's "Server-to-Server OAuth" app); answers `access_token` and
  `expires_in` (seconds, about an hour).
- `POST {api_base}/v2/users/me/meetings` (scope `meeting:write:meeting:admin`, classic `meeting:write:admin`)
  creates a scheduled meeting; `PATCH /v2/meetings/{id}` moves it; `DELETE /v2/meetings/{id}` removes it.

Requests go through `core.outbound.guarded_request` (timeouts, no redirects, size cap) with
`user_supplied=False`: the base URLs are ours (ZOOM_OAUTH_BASE_URL, ZOOM_API_BASE_URL). Errors carry short
codes only ("zoom_http_401", "zoom_timeout"): never the token, the secret or a response body.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit

from core.outbound import OutboundError, OutboundTimeoutError, ResponseTooLargeError, guarded_request

MEETING_TYPE_SCHEDULED = 2
# A Zoom join URL: https://<zoom.us or a subdomain>/j/<meeting id>[?pwd=...]
_JOIN_PATH_RE = re.compile(r"/j/(\d{9,12})/?")
_ZOOM_HOST_RE = re.compile(r"(?:[a-z0-9-]+\.)*zoom\.(?:us|com)")


class ZoomError(Exception):
    """A Zoom call failed. `code` is short and secret-free ("zoom_http_401", "zoom_token_http_400")."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class ZoomAuthError(ZoomError):
    """The access token was refused (401): a cached one may have been revoked; fetch a new one."""


@dataclass(frozen=True)
class ZoomToken:
    access_token: str
    expires_in: int  # seconds

    def __repr__(self) -> str:  # never print the token
        return f"ZoomToken(expires_in={self.expires_in})"


@dataclass(frozen=True)
class ZoomMeeting:
    id: str
    join_url: str


def meeting_id_from_join_url(url: str) -> str | None:
    """The meeting id in a Zoom join URL (https://us05web.zoom.us/j/85746065123?pwd=...), else None."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return None
    if parts.scheme != "https" or not _ZOOM_HOST_RE.fullmatch((parts.hostname or "").lower()):
        return None
    match = _JOIN_PATH_RE.fullmatch(parts.path)
    return match.group(1) if match else None


def _zoom_time(value: datetime) -> str:
    """Zoom's UTC form: 2026-03-02T09:00:00Z (the `timezone` field only decides how Zoom displays it)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ZoomClient:
    def __init__(
        self,
        *,
        account_id: str,
        client_id: str,
        client_secret: str,
        oauth_base_url: str = "https://zoom.us",
        api_base_url: str = "https://api.zoom.us",
        timeout: float | None = None,
    ):
        if not (account_id and client_id and client_secret):
            raise ZoomError("zoom_not_configured")
        self.account_id = account_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.oauth_base_url = oauth_base_url.rstrip("/")
        self.api_base_url = api_base_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ZoomClient(account_id={self.account_id!r})"

    # --- HTTP ---------------------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, headers: dict, what: str, content=None, json=None):
        try:
            return guarded_request(
                method, url, headers=headers, content=content, json=json, timeout=self.timeout, user_supplied=False
            )
        except ResponseTooLargeError:
            raise ZoomError(f"zoom_{what}response_too_large") from None
        except OutboundTimeoutError:
            raise ZoomError(f"zoom_{what}timeout") from None
        except OutboundError:
            raise ZoomError(f"zoom_{what}connection_error") from None

    def _api(self, method: str, path: str, *, token: str, json=None):
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if json is not None:
            headers["Content-Type"] = "application/json"
        response = self._send(method, f"{self.api_base_url}/v2{path}", headers=headers, what="", json=json)
        if response.status_code == 401:
            raise ZoomAuthError("zoom_http_401")
        if not response.is_success:
            code = f"zoom_http_{response.status_code}"
            zoom_code = _error_code(response)
            raise ZoomError(f"{code}_error_{zoom_code}" if zoom_code else code)
        return response

    # --- Calls --------------------------------------------------------------------------------------

    def fetch_token(self) -> ZoomToken:
        """A server-to-server OAuth access token for the account."""
        query = urlencode({"grant_type": "account_credentials", "account_id": self.account_id}, quote_via=quote)
        credentials = base64.b64encode(f"{self.client_id}:{self._client_secret}".encode()).decode("ascii")
        headers = {
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        response = self._send("POST", f"{self.oauth_base_url}/oauth/token?{query}", headers=headers, what="token_")
        if not response.is_success:
            raise ZoomError(f"zoom_token_http_{response.status_code}")
        try:
            data = response.json()
            token, expires_in = data["access_token"], int(data.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ZoomError("zoom_token_bad_response") from None
        if not isinstance(token, str) or not token or expires_in <= 0:
            raise ZoomError("zoom_token_bad_response")
        return ZoomToken(access_token=token, expires_in=expires_in)

    def create_meeting(
        self, *, token: str, topic: str, start_time: datetime, duration: int, timezone: str
    ) -> ZoomMeeting:
        """A scheduled meeting of the account's user (`me`); its `join_url` must be an https URL."""
        body = {
            "topic": topic,
            "type": MEETING_TYPE_SCHEDULED,
            "start_time": _zoom_time(start_time),
            "duration": duration,
            "timezone": timezone,
            "settings": {"join_before_host": False, "waiting_room": True},
        }
        response = self._api("POST", "/users/me/meetings", token=token, json=body)
        try:
            data = response.json()
            meeting_id, join_url = str(data["id"]), data["join_url"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ZoomError("zoom_bad_response") from None
        if not isinstance(join_url, str) or not join_url.startswith("https://") or len(join_url) > 500:
            raise ZoomError("zoom_bad_response")
        return ZoomMeeting(id=meeting_id, join_url=join_url)

    def update_meeting(self, *, token: str, meeting_id: str, start_time: datetime, duration: int, timezone: str):
        """Move a meeting (Zoom answers 204); its join URL stays the same."""
        body = {"start_time": _zoom_time(start_time), "duration": duration, "timezone": timezone}
        self._api("PATCH", f"/meetings/{quote(meeting_id, safe='')}", token=token, json=body)

    def delete_meeting(self, *, token: str, meeting_id: str) -> None:
        self._api("DELETE", f"/meetings/{quote(meeting_id, safe='')}", token=token)


def _error_code(response) -> str:
    """Zoom's numeric error code ({"code": 3001, "message": "..."}), or ""."""
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return ""
    return str(code) if isinstance(code, int) else ""
