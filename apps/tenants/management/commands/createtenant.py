"""`manage.py createtenant SLUG --owner USERNAME`: a tenant with its default environments,
and its owner's account if it does not exist yet (the generated password printed once)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from apps.core.management.commands._common import (
    command_errors,
    generate_password,
    mark_email_verified,
    refuse_reserved_user,
)
from apps.tenants.services import create_tenant

OPTION_NAMES = {"slug": "SLUG", "name": "--name", "username": "--owner", "email": "--email"}


class Command(BaseCommand):
    help = (
        "Create a tenant with its default environments (dev, staging, prod), owned by "
        "USERNAME; the user is created if missing and its password printed once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="lowercase letters, digits and hyphens")
        parser.add_argument("--owner", required=True, metavar="USERNAME")
        parser.add_argument("--name", default="", help="display name (default: the slug)")
        parser.add_argument(
            "--email", default="", help="the owner's address, if the user is created"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic(), command_errors(OPTION_NAMES):
            owner, password = self._owner(options["owner"].strip(), options["email"].strip())
            tenant = create_tenant(
                actor=None, slug=options["slug"].strip(), name=options["name"].strip(), owner=owner
            )
        if password:
            self.stdout.write(self.style.SUCCESS(f"Created user {owner.username} <{owner.email}>."))
            self.stdout.write(f"  Password: {password}")
            self.stdout.write("  (shown only this once: note it now)")
        envs = ", ".join(tenant.environments.values_list("slug", flat=True))
        self.stdout.write(
            self.style.SUCCESS(
                f"Created tenant {tenant.slug} ({tenant.name}) owned by {owner.username}, "
                f"with environments {envs}."
            )
        )

    def _owner(self, username: str, email: str) -> tuple[Any, str]:
        """The existing user, or a new one with a generated password (returned once)."""
        refuse_reserved_user(username)
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is not None:
            if not user.is_active:
                raise CommandError(f"--owner: user {username} is deactivated.")
            if email and email.lower() != (user.email or "").lower():
                self.stderr.write(f"User {username} exists; --email {email} is ignored.")
            return user, ""
        return self._create_user(users, username, email or f"{username}@localhost")

    def _create_user(self, users: Any, username: str, email: str) -> tuple[Any, str]:
        if not username:
            raise CommandError("--owner: give a user name.")
        errors = {}
        try:
            users.model.username_validator(username)
        except ValidationError as exc:
            errors["username"] = exc.messages
        try:
            validate_email(email)
        except ValidationError as exc:
            errors["email"] = exc.messages
        if not errors and users.filter(email__iexact=email).exists():
            errors["email"] = ["Another user already has this address."]
        if errors:
            raise ValidationError(errors)
        password = generate_password()
        user = users.create_user(username=username, email=email, password=password)
        mark_email_verified(user)
        return user, password
