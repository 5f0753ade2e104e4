"""`manage.py createtoken USERNAME`: a personal API token, printed once on stdout alone,
so scripts can capture it (TOKEN=$(manage.py createtoken alice)); details go to stderr."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.services import create_token
from apps.core.management.commands._common import command_errors, refuse_reserved_user
from apps.tenants.models import Tenant

OPTION_NAMES = {"name": "--name", "expires_days": "--expires", "read_only": "--read-only"}


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (once) on stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--tenant", metavar="SLUG", help="bind the token to this tenant")
        parser.add_argument("--read-only", action="store_true", help="allow reads only")
        parser.add_argument(
            "--expires", type=int, metavar="DAYS", help="expire after DAYS days (default: never)"
        )
        parser.add_argument("--name", default="cli", help="a name to recognise it by")

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._user(options["username"])
        tenant = self._tenant(options["tenant"]) if options["tenant"] else None
        with command_errors(OPTION_NAMES):
            token, raw = create_token(
                actor=user,
                name=options["name"],
                tenant=tenant,
                read_only=options["read_only"],
                expires_days=options["expires"],
            )
        scope = f"tenant {tenant.slug}" if tenant else "all of the user's tenants"
        expiry = (
            f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "no expiry"
        )
        self.stderr.write(
            f"Token {token.name} ({token.prefix}…) for {user.username}: {scope}, "
            f"{'read-only' if token.read_only else 'read-write'}, {expiry}. Shown only once."
        )
        self.stdout.write(raw)

    def _user(self, username: str) -> Any:
        refuse_reserved_user(username)
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username}.")
        if not user.is_active:
            raise CommandError(f"User {username} is deactivated.")
        return user

    def _tenant(self, slug: str) -> Tenant:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"--tenant: no tenant with slug {slug}.")
        return tenant
