"""Errors answered as JSON {"error": "..."}, never echoing much of what the client sent."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from fst import shown  # noqa: F401 (the routes and the parser import it from here)


class ApiError(Exception):
    """An HTTP error answered as {"error": message}."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, reason: str | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
        self.reason = reason  # a refusal counted in fst_rejected_total{reason}


class ClientGone(Exception):
    """The client hung up (during the upload, in the queue or while its job ran): logged as 499."""


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message[:1000]}, status_code=status, headers=headers)
