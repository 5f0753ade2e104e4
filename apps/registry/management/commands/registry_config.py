"""`manage.py registry_config`: render the registry's config.yml (stdout or --output) and,
with --gate-output, the haproxy.cfg of the gate in front of it."""

from pathlib import Path

from django.core.management.base import BaseCommand

from apps.registry.config import render_config, write_config, write_gate_config


class Command(BaseCommand):
    help = "Render the docker-registry config.yml that trusts Berth's token service."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="write here (mode 0600) instead of stdout")
        parser.add_argument("--public-url", help="Berth's URL as the registry reaches it")
        parser.add_argument(
            "--addr", help="the registry's own listen address (default: behind the gate)"
        )
        parser.add_argument("--gate-output", help="also write the gate's haproxy.cfg here")
        parser.add_argument(
            "--portal-addr", help="host:port where the gate reaches Berth (default: public URL)"
        )
        parser.add_argument("--root", help="storage folder (default BERTH_STATE_DIR/registry/data)")
        parser.add_argument("--readonly", action="store_true", help="maintenance read-only mode")
        parser.add_argument("--no-auth", action="store_true", help="no token auth (benchmarks)")
        parser.add_argument("--no-notifications", action="store_true")
        parser.add_argument("--s3-bucket", help="use S3-compatible object storage")
        parser.add_argument("--s3-endpoint", help="S3 endpoint URL (MinIO, Ceph...)")
        parser.add_argument("--s3-region", default="us-east-1")

    def handle(self, *args, **opts):
        s3 = None
        if opts["s3_bucket"]:
            s3 = {"region": opts["s3_region"], "bucket": opts["s3_bucket"], "v4auth": True}
            if opts["s3_endpoint"]:
                s3["regionendpoint"] = opts["s3_endpoint"]
        options = {
            "public_url": opts["public_url"],
            "addr": opts["addr"],
            "root": Path(opts["root"]) if opts["root"] else None,
            "readonly": opts["readonly"],
            "auth": not opts["no_auth"],
            "notifications": not opts["no_notifications"],
            "s3": s3,
        }
        if opts["gate_output"]:
            write_gate_config(
                Path(opts["gate_output"]), backend=opts["addr"], portal=opts["portal_addr"]
            )
        if opts["output"]:
            path = write_config(Path(opts["output"]), **options)
            self.stdout.write(str(path))
        else:
            self.stdout.write(render_config(**options))
