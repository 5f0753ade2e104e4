"""`manage.py registerhost NAME ENDPOINT`: add a Docker engine and ask it how it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.management.commands._common import command_errors
from apps.hosts import services
from apps.hosts.models import Host

OPTION_NAMES = {
    "name": "NAME",
    "endpoint": "ENDPOINT",
    "tls_ca_cert": "--tls-ca",
    "tls_client_cert": "--tls-cert",
    "tls_client_key": "--tls-key",
    "labels": "--label",
    "kind": "--swarm",
}


def _read_pem(option: str, path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except UnicodeDecodeError:
        raise CommandError(f"{option}: {path} is not a PEM text file.") from None
    except OSError as exc:
        raise CommandError(f"{option}: cannot read {path} ({exc.strerror or exc}).") from None


def _labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--label: {item!r} is not key=value.")
        labels[key.strip()] = value.strip()
    return labels


def _summary(host: Host) -> str:
    if host.state == Host.State.UNREACHABLE:
        return f"unreachable: {host.last_error}"
    memory = f"{host.memory_bytes / 2**30:.1f} GiB" if host.memory_bytes else "? GiB"
    if host.is_swarm:
        nodes = list(host.swarm_nodes.filter(gone_at__isnull=True))
        ready = sum(1 for n in nodes if n.state == "ready")
        return (
            f"{host.state}, Swarm cluster of {len(nodes)} nodes ({ready} ready), manager "
            f"engine {host.engine_version}, {host.cpus} CPUs, {memory} on usable nodes, "
            f"{host.containers_running} tasks running"
        )
    return (
        f"{host.state}, Docker engine {host.engine_version} (API {host.api_version}), "
        f"{host.cpus} CPUs, {memory}, "
        f"{host.containers_running}/{host.containers_total} containers running"
    )


class Command(BaseCommand):
    help = (
        "Register a Docker engine as a host: unix:///path/to/docker.sock or tcp://host:port "
        "(with --tls-ca, --tls-cert and --tls-key for TLS), then run one heartbeat."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("endpoint", help="unix:///var/run/docker.sock or tcp://host:2376")
        parser.add_argument("--tls-ca", metavar="FILE", help="CA certificate (PEM)")
        parser.add_argument("--tls-cert", metavar="FILE", help="client certificate (PEM)")
        parser.add_argument("--tls-key", metavar="FILE", help="client private key (PEM)")
        parser.add_argument(
            "--label", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
        )
        parser.add_argument(
            "--swarm",
            action="store_true",
            help="ENDPOINT is a Swarm manager's engine: register the cluster (its nodes)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with command_errors(OPTION_NAMES):
            host = services.register_host(
                actor=None,
                name=options["name"],
                endpoint=options["endpoint"],
                kind=Host.Kind.SWARM if options["swarm"] else Host.Kind.ENGINE,
                tls_ca_cert=_read_pem("--tls-ca", options["tls_ca"]),
                tls_client_cert=_read_pem("--tls-cert", options["tls_cert"]),
                tls_client_key=_read_pem("--tls-key", options["tls_key"]),
                labels=_labels(options["label"]),
            )
        self.stdout.write(self.style.SUCCESS(f"Registered host {host.name} at {host.endpoint}."))
        host = services.heartbeat(host.pk) or host
        style = self.style.WARNING if host.state == Host.State.UNREACHABLE else str
        self.stdout.write(style(f"Heartbeat: {_summary(host)}"))
