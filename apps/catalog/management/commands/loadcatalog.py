"""`manage.py loadcatalog [PATH]`: load the built-in templates; safe to run again."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.catalog.loader import load_catalog


def default_catalog_path() -> str:
    return str(settings.BERTH_CATALOG_DIR)


class Command(BaseCommand):
    help = (
        "Load (or refresh) the built-in catalog from PATH (default catalog/). Versions "
        "already loaded with the same content are left alone; a changed version is refused."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", nargs="?", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        report = load_catalog(options["path"] or default_catalog_path())
        self.stdout.write(
            f"Catalog: {len(report.templates)} templates; {len(report.created)} versions "
            f"added, {len(report.unchanged)} unchanged."
        )
        for line in report.created:
            self.stdout.write(f"  added {line}")
        for line in report.problems:
            self.stderr.write(self.style.ERROR(line))
        if report.problems:
            raise CommandError(f"{len(report.problems)} problem(s) in the catalog; see above.")
