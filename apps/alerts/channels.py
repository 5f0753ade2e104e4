"""The rules of a notification channel's target and secret, written once for the
portal's form and the API: e-mail addresses, a webhook URL (http or https, no
credentials in it, no address Berth refuses to call), the signing secret encrypted at
rest with apps.core.crypto (its own purpose, as the environments' secrets store)."""

from __future__ import annotations

import ipaddress
import secrets as random
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from apps.alerts.models import AlertChannel
from apps.core import crypto

_PURPOSE = b"berth alert webhook secrets"
MAX_ADDRESSES = 20


def addresses(target: str) -> list[str]:
    return [a.strip() for a in target.split(",") if a.strip()]


def clean_email_target(value: Any) -> str:
    found = addresses(value) if isinstance(value, str) else []
    if not found:
        raise ValidationError({"target": ["Enter at least one e-mail address."]})
    if len(found) > MAX_ADDRESSES:
        raise ValidationError({"target": [f"At most {MAX_ADDRESSES} addresses."]})
    for address in found:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError({"target": [f"{address!r} is not an e-mail address."]}) from None
    return ", ".join(found)


def clean_webhook_url(value: Any) -> str:
    """An http(s) URL with a host name, no user:password, at most 1000 characters; an
    address given literally is checked now (a name is checked at each delivery)."""
    from apps.alerts.delivery import address_refusal

    url = value.strip() if isinstance(value, str) else ""
    if not url or len(url) > 1000:
        raise ValidationError({"target": ["Enter the webhook's URL (at most 1000 characters)."]})
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValidationError({"target": ["This is not a valid URL."]}) from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError({"target": ["Use an http:// or https:// URL."]})
    if not parts.hostname:
        raise ValidationError({"target": ["The URL needs a host name."]})
    if parts.username or parts.password:
        raise ValidationError(
            {"target": ["No user name or password in the URL: the signature authenticates."]}
        )
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and (why := address_refusal(str(literal))):
        raise ValidationError({"target": [f"Berth does not call {why}."]})
    return url


def clean_target(kind: str, value: Any) -> str:
    if kind == AlertChannel.Kind.EMAIL:
        return clean_email_target(value)
    if kind == AlertChannel.Kind.WEBHOOK:
        return clean_webhook_url(value)
    raise ValidationError({"kind": ["Choose email or webhook."]})


def clean_secret(value: Any) -> str:
    if not isinstance(value, str) or not 16 <= len(value) <= 200:
        raise ValidationError({"secret": ["Use 16 to 200 characters (or leave it empty)."]})
    return value


def new_secret() -> str:
    return random.token_urlsafe(32)


def encrypt_secret(value: str) -> str:
    return crypto.encrypt(value.encode(), _PURPOSE)


def secret_of(channel: AlertChannel) -> bytes:
    """The webhook's signing secret (decrypted only to sign)."""
    return crypto.decrypt(channel.secret_encrypted, _PURPOSE)
