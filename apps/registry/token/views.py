"""GET /registry/token/: the realm named in the registry's config.yml.

Docker registry token specification: Basic credentials (or none, for anonymous pulls),
`service` and any number of `scope` parameters in; a short-lived JWT out.
"""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from apps.registry.token.credentials import (
    authenticate_basic,
    record_failure,
    too_many_failures,
)
from apps.registry.token.scopes import ANONYMOUS, parse_scopes
from apps.registry.token.service import TokenRefusedError, token_for


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"errors": [{"code": code, "message": message}]}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = f'Basic realm="{settings.BERTH_REGISTRY_SERVICE}"'
    return response


def basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """(username, password) from `Authorization: Basic ...`; None without the header.

    Raises ValueError for a header that is present but unreadable.
    """
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise ValueError("Use Basic authentication.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("Malformed Basic credentials.") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError("Malformed Basic credentials.")
    return username, password


@method_decorator(csrf_exempt, name="dispatch")
class RegistryTokenView(View):
    """Thin: parse, authenticate, ask service.token_for, answer JSON."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> JsonResponse:
        service = request.GET.get("service") or settings.BERTH_REGISTRY_SERVICE
        if service != settings.BERTH_REGISTRY_SERVICE:
            return _error(400, "UNSUPPORTED", f"Unknown service {service!r}.")
        try:
            credentials = basic_credentials(request)
        except ValueError as exc:
            return _error(401, "UNAUTHORIZED", str(exc))
        principal = ANONYMOUS
        if credentials is not None:
            address = request.META.get("REMOTE_ADDR", "")
            if too_many_failures(address, credentials[0]):
                return _error(429, "TOOMANYREQUESTS", "Too many failed logins; wait a while.")
            principal = authenticate_basic(request, *credentials)
            if principal is None:
                record_failure(address, credentials[0])
                return _error(401, "UNAUTHORIZED", "Invalid username, password or token.")
        scopes = parse_scopes(request.GET.getlist("scope"))
        try:
            issued = token_for(principal, scopes, service)
        except TokenRefusedError as exc:
            return _error(403, "DENIED", exc.message)
        response = JsonResponse(issued.as_response())
        response["Cache-Control"] = "no-store"
        return response
