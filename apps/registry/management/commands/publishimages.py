"""`manage.py publishimages`: push the demo images to Berth's registry (`make run` does).

Needs the registry and Berth's web server up: the engine asks Berth's token endpoint
for a push token with the publisher's short-lived credential.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.core.management.commands._common import command_errors
from apps.hosts.engine import EngineError, get_engine
from apps.hosts.services import ensure_local_host
from apps.registry.publish import Published, demo_images, platform_ref
from apps.registry.services import publish_images


class Command(BaseCommand):
    help = (
        "Push the demo images (built by deploy/build-images.sh as berth-demo/NAME:TAG) "
        "from the local engine to Berth's registry as <registry>/library/NAME:TAG, public."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "images", nargs="*", help="berth-demo/NAME:TAG images (default: all demo images)"
        )
        parser.add_argument(
            "--admin", help="the platform administrator recorded as publisher (default: first)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = self._admin(options["admin"])
        sources = options["images"] or demo_images()
        with command_errors({"image": "images"}):
            for source in sources:
                platform_ref(source)  # every name is checked before the engine is asked
        host, _ = ensure_local_host()
        self.stdout.write(
            f"Publishing {len(sources)} images from {host.endpoint} "
            f"to {settings.BERTH_REGISTRY_ADDR}:"
        )
        with command_errors({"image": "images"}), get_engine(host) as engine:
            try:
                publish_images(actor=actor, engine=engine, sources=sources, progress=self._say)
            except EngineError as exc:
                raise CommandError(str(exc)) from None

    def _say(self, item: Published) -> None:
        what = "pushed" if item.pushed else "up to date"
        self.stdout.write(f"  {what:<10}  {item.target}  {item.digest}")

    def _admin(self, username: str | None) -> Any:
        admins = get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("pk")
        if username:
            admins = admins.filter(username=username)
        admin = admins.first()
        if admin is None:
            which = f"named {username} " if username else ""
            raise CommandError(f"No active superuser {which}exists: run berth_bootstrap first.")
        return admin
