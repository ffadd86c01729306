"""Domain errors. Services raise them; the HTTP layer turns them into JSON answers."""

from __future__ import annotations

from typing import Any


class PostroomError(Exception):
    """Base error carrying the HTTP status it maps to."""

    status_code = 400

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class NotFound(PostroomError):
    """The object does not exist, or belongs to another account (never said which)."""

    status_code = 404

    def __init__(self, what: str = "Resource", *, field: str | None = None) -> None:
        message = f"{what} not found"
        super().__init__(message, errors=[{"field": field, "message": message}] if field else None)


class Unauthorized(PostroomError):
    """Missing or invalid credentials."""

    status_code = 401


class Forbidden(PostroomError):
    """Authenticated, but the role does not allow this."""

    status_code = 403


class Conflict(PostroomError):
    """The request collides with existing data (a duplicate e-mail, short code, …)."""

    status_code = 409


class Invalid(PostroomError):
    """The request is well-formed but its values are not acceptable."""

    status_code = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        errors = [{"field": field, "message": message}] if field else []
        super().__init__(message, errors=errors)


class TooLarge(PostroomError):
    """The request body, or a file in it, is over the size limit."""

    status_code = 413
