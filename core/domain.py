"""Domain errors: what services raise when a request cannot be done. No HTTP here.

Each API's envelope maps them (`core.errors.api_error_from_exception`): `NotFound` -> 404,
`PermissionDenied` -> 403, `Conflict` -> 409, `Invalid` -> 400, `AuthenticationFailed` -> 401,
`Unavailable` -> 503. `code` is an optional machine-readable code the API shows (e.g. LoveRescue
`NO_CONSENT`); `details` optional structured details (field names, never PHI).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    default_message = "The request cannot be done"

    def __init__(self, message: str = "", *, code: str | None = None, details: Any = None):
        self.message = message or self.default_message
        self.code = code
        self.details = details
        super().__init__(self.message)


class Invalid(DomainError):
    default_message = "Invalid request"


class NotFound(DomainError):
    default_message = "Not found"


class PermissionDenied(DomainError):
    default_message = "Access denied"


class AuthenticationFailed(DomainError):
    default_message = "Authentication failed"


class Conflict(DomainError):
    default_message = "Conflict"


class Unavailable(DomainError):
    default_message = "Service unavailable"
