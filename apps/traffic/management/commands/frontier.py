"""`manage.py frontier render|apply|status`: the frontier's configuration by hand.

deploy/lib.sh runs `frontier apply` before it starts HAProxy (the first configuration,
from the database); `render` shows what Berth would write without touching the running
frontier; `status` prints status.json and what HAProxy says about each route's servers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.deployments.models import Route
from apps.traffic import frontier, process, runtime


class Command(BaseCommand):
    help = "Render, apply or show the frontier's (HAProxy's) configuration."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        render = sub.add_parser("render", help="print (or --output) the configuration")
        render.add_argument("--output", "-o", help="write the configuration here instead")
        apply = sub.add_parser("apply", help="render, check, install, reload when running")
        apply.add_argument("--reason", default="manage.py frontier apply")
        sub.add_parser("status", help="the last apply and each route's servers")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(**options)

    def _render(self, output: str | None = None, **_: Any) -> None:
        snap = frontier.snapshot()
        rendered = frontier.render(snap)
        for line in rendered.skipped:
            self.stderr.write(f"skipped: {line}")
        if not output:
            self.stdout.write(rendered.config)
            return
        # The configuration names its maps in BERTH_FRONTIER_DIR/gen/<hash>/: write them
        # too, so `haproxy -c -f OUTPUT` checks exactly what would run.
        target = Path(output)
        files = Path(snap.directory) / frontier.GENERATIONS / rendered.generation
        files.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.files.items():
            (files / name).write_text(text)
        target.write_text(rendered.config)
        self.stdout.write(str(target))

    def _apply(self, reason: str = "", **_: Any) -> None:
        result = frontier.apply(reason)
        for line in result.skipped:
            self.stderr.write(f"skipped: {line}")
        if not result.ok:
            raise CommandError(result.error)
        state = "reloaded" if result.reloaded else "written (no frontier running)"
        if not result.reloaded and process.is_running(frontier.directory()):
            state = "unchanged"
        self.stdout.write(f"frontier {state}: {result.routes} routes, {result.servers} servers")

    def _status(self, **_: Any) -> None:
        status = frontier.read_status()
        running = process.is_running(frontier.directory())
        routes = {r.pk: str(r) for r in Route.objects.order_by("pk")}
        servers = runtime.backend_status(routes) if running else {}
        report = {
            "running": running,
            "status": status,
            "routes": {routes[rid]: servers.get(rid, []) for rid in routes},
        }
        self.stdout.write(json.dumps(report, indent=2))
