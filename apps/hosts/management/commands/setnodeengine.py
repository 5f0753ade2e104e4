"""`manage.py setnodeengine HOST NODE ENDPOINT`: give a Swarm node its own engine endpoint."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from apps.core.management.commands._common import command_errors
from apps.hosts import services
from apps.hosts.management.commands.registerhost import _read_pem
from apps.hosts.models import Host, SwarmNode

OPTION_NAMES = {
    "host": "HOST",
    "node": "NODE",
    "endpoint": "ENDPOINT",
    "tls_ca_cert": "--tls-ca",
    "tls_client_cert": "--tls-cert",
    "tls_client_key": "--tls-key",
}


def _node(host: Host, name: str) -> SwarmNode:
    """The present node called `name` (its hostname or node id) on `host`."""
    found = list(
        host.swarm_nodes.filter(gone_at__isnull=True).filter(Q(hostname=name) | Q(node_id=name))
    )
    if len(found) != 1:
        known = ", ".join(n.hostname or n.node_id for n in host.swarm_nodes.filter(gone_at=None))
        why = "names several nodes" if found else "is no node of it"
        raise CommandError(f"NODE: {name} {why} (its nodes: {known or 'none recorded yet'}).")
    return found[0]


class Command(BaseCommand):
    help = (
        "Set the engine endpoint of one node of a Swarm cluster host (unix:///path or "
        "tcp://host:port with --tls-ca, --tls-cert and --tls-key), so shells, live stats and "
        "inspect reach the tasks on it; Berth first checks the engine is that node. An "
        'empty ENDPOINT ("") removes it.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host", help="the Swarm cluster host's name")
        parser.add_argument("node", help="the node's hostname or node id")
        parser.add_argument("endpoint", help='unix:///var/run/docker.sock, tcp://host:2376, or ""')
        parser.add_argument("--tls-ca", metavar="FILE", help="CA certificate (PEM)")
        parser.add_argument("--tls-cert", metavar="FILE", help="client certificate (PEM)")
        parser.add_argument("--tls-key", metavar="FILE", help="client private key (PEM)")

    def handle(self, *args: Any, **options: Any) -> None:
        host = Host.objects.filter(name=options["host"]).first()
        if host is None:
            raise CommandError(f"HOST: no host is called {options['host']}.")
        node = _node(host, options["node"]) if host.is_swarm else None
        with command_errors(OPTION_NAMES):
            node = services.set_node_engine(
                actor=None,
                host=host,
                node_id=node.node_id if node else options["node"],
                endpoint=options["endpoint"],
                tls_ca_cert=_read_pem("--tls-ca", options["tls_ca"]),
                tls_client_cert=_read_pem("--tls-cert", options["tls_cert"]),
                tls_client_key=_read_pem("--tls-key", options["tls_key"]),
            )
        if node.engine_endpoint:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Node {node.hostname} of {host.name}: engine {node.engine_endpoint} "
                    "answers as this node; shells and stats of its tasks go there."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Node {node.hostname}: engine endpoint removed."))
