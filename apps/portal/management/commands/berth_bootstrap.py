"""`manage.py berth_bootstrap`: make a fresh Berth usable; safe to run on every start.

It creates the admin account (once), the admin's "default" tenant, sets the site domain
used in e-mailed links, and registers the local Docker engine as a host.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from apps.catalog.loader import load_catalog
from apps.catalog.management.commands.loadcatalog import default_catalog_path
from apps.core.management.commands._common import (
    command_errors,
    generate_password,
    mark_email_verified,
)
from apps.hosts.models import Host
from apps.hosts.services import ensure_local_host
from apps.tenants.models import Membership, Tenant
from apps.tenants.services import create_tenant

DEFAULT_TENANT = "default"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


class Command(BaseCommand):
    help = (
        "Prepare Berth: admin account (password printed once), default tenant, site "
        "domain and the local Docker engine as a host. Idempotent."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        admin = self._admin()
        if mark_email_verified(admin):
            self._say(f"E-mail address {admin.email} of {admin.username} is verified.")
        self._default_tenant(admin)
        self._site()
        self._local_host()
        self._catalog()

    def _catalog(self) -> None:
        """The built-in templates; a bad one is reported and skipped, never fatal here."""
        report = load_catalog(default_catalog_path())
        self._say(
            f"Catalog: {len(report.templates)} templates, {len(report.created)} versions added."
        )
        for line in report.problems:
            self._say(self.style.WARNING(f"  catalog: {line}"))

    def _say(self, text: str) -> None:
        self.stdout.write(text)

    def _admin(self) -> Any:
        users = get_user_model().objects
        username = _env("BERTH_ADMIN_USERNAME", "admin")
        superusers = users.filter(is_superuser=True).order_by("pk")
        existing = superusers.filter(username=username).first() or superusers.first()
        if existing is not None:
            self._say(f"Superuser {existing.username} exists; left unchanged.")
            return existing
        if users.filter(username=username).exists():
            raise CommandError(
                f"A user named {username} exists but is not a superuser. Set "
                "BERTH_ADMIN_USERNAME to another name, or promote it with createsuperuser."
            )
        return self._create_admin(users, username)

    def _create_admin(self, users: Any, username: str) -> Any:
        email = _env("BERTH_ADMIN_EMAIL", "admin@localhost")
        try:
            validate_email(email)
            users.model.username_validator(username)
        except ValidationError as exc:
            raise CommandError(f"BERTH_ADMIN_USERNAME/EMAIL: {' '.join(exc.messages)}") from None
        given = os.environ.get("BERTH_ADMIN_PASSWORD", "")
        password = given or generate_password()
        admin = users.create_superuser(username=username, email=email, password=password)
        self._say(self.style.SUCCESS(f"Created superuser {username} <{email}>."))
        if given:
            self._say("  Password: the one in BERTH_ADMIN_PASSWORD.")
        else:
            self._say(f"  Password: {password}")
            self._say("  (shown only this once and stored nowhere else: note it now)")
        return admin

    def _default_tenant(self, admin: Any) -> None:
        if Membership.objects.filter(user=admin).exists():
            return
        if Tenant.objects.filter(slug=DEFAULT_TENANT).exists():
            self._say(f"Tenant {DEFAULT_TENANT} exists without {admin.username}; left as is.")
            return
        with command_errors():
            tenant = create_tenant(actor=admin, slug=DEFAULT_TENANT, name="Default")
        envs = ", ".join(tenant.environments.values_list("slug", flat=True))
        self._say(f"Created tenant {tenant.slug} owned by {admin.username} ({envs}).")

    def _site(self) -> None:
        # Read now, like the admin's name and address: the command's own environment wins.
        domain = _env("BERTH_SITE_DOMAIN", settings.BERTH_SITE_DOMAIN)
        site, created = Site.objects.get_or_create(
            pk=settings.SITE_ID, defaults={"domain": domain, "name": "Berth"}
        )
        if created or site.domain != domain:
            site.domain, site.name = domain, "Berth"
            site.save()
            self._say(f"Site domain set to {domain}.")

    def _local_host(self) -> None:
        with command_errors({"endpoint": "BERTH_DOCKER_HOST"}):
            host, created = ensure_local_host()
        verb = "Registered" if created else "Host"
        where = f"{verb} {host.name} at {host.endpoint}"
        if host.state == Host.State.UNREACHABLE:
            self._say(self.style.WARNING(f"{where}: unreachable ({host.last_error})"))
            return
        self._say(f"{where}: {host.state}, Docker engine {host.engine_version}.")
