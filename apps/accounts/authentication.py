"""`Authorization: Bearer <token>` for the API; the token rides on `request.auth`."""

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions

from apps.accounts.models import find_token

LAST_USED_RESOLUTION = timedelta(seconds=60)


def touch_last_used(credential: models.Model) -> bool:
    """Record the use of a credential (API token, robot) in its `last_used_at`, writing at
    most once per LAST_USED_RESOLUTION, so authenticating does not turn into a write per
    request. The value read with the credential decides without a query; the update is
    conditional, so requests arriving together write once. True when it wrote.
    """
    now = timezone.now()
    last = credential.last_used_at
    if last is not None and now - last < LAST_USED_RESOLUTION:
        return False
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    written = (
        type(credential)._default_manager.filter(stale, pk=credential.pk).update(last_used_at=now)
    )
    credential.last_used_at = now
    return bool(written)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() not in ("bearer", "token"):
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        token = find_token(parts[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        touch_last_used(token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
