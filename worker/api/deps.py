"""Who may call what: the bearer token, checked against the app's own settings.

Writes always need ``INGEST_API_TOKEN``; reads need it only with
``INGEST_API_READ_REQUIRES_TOKEN``. With no token configured, what needs one answers
503 (disabled) rather than being open. The settings are the ones
:func:`worker.api.create_app` was built with (``app.state.settings``), not the
environment's at request time.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..settings import Settings

bearer = HTTPBearer(auto_error=False, description="INGEST_API_TOKEN")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def _check_token(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    if not settings.api_token:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "disabled: the server has no INGEST_API_TOKEN configured",
        )
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "bearer token required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Constant time: how much of a guess matched must not show in the response time.
    if not hmac.compare_digest(credentials.credentials.encode(), settings.api_token.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")


def require_read(settings: AppSettings, credentials: Credentials) -> None:
    if settings.api_read_requires_token:
        _check_token(settings, credentials)


def require_write(settings: AppSettings, credentials: Credentials) -> None:
    _check_token(settings, credentials)
