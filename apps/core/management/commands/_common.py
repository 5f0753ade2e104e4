"""Helpers for Berth's operator commands (a leading underscore: Django does not list it).

Service errors become CommandError messages naming the command-line option, so an
operator sees one clear line, never a traceback.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from allauth.account.models import EmailAddress
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import CommandError
from guardian.conf import settings as guardian_settings


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def _messages(exc: ValidationError, options: Mapping[str, str]) -> str:
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    parts = []
    for field, msgs in exc.message_dict.items():
        label = options.get(field, field)
        parts.append(f"{label}: {' '.join(msgs)}")
    return "; ".join(parts)


@contextmanager
def command_errors(options: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn service refusals into CommandError; `options` maps field names to option names."""
    try:
        yield
    except ValidationError as exc:
        raise CommandError(_messages(exc, options or {})) from None
    except PermissionDenied as exc:
        raise CommandError(str(exc) or "Not allowed.") from None


def refuse_reserved_user(username: str) -> None:
    """django-guardian keeps a stand-in row for anonymous visitors; it is nobody's account."""
    if username == guardian_settings.ANONYMOUS_USER_NAME:
        raise CommandError(f"{username} is reserved for anonymous visitors; pick another user.")


def mark_email_verified(user: Any) -> bool:
    """Mark the user's address verified and primary in allauth, so mandatory e-mail
    verification does not block an account the operator created. False when the user
    has no address or another account already holds it verified."""
    email = (user.email or "").strip()
    if not email:
        return False
    address, _ = EmailAddress.objects.get_or_create(
        user=user, email__iexact=email, defaults={"email": email}
    )
    if not address.set_verified():
        return False
    if not address.primary:
        address.set_as_primary(conditional=True)
    return True
