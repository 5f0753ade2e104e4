"""Real receivers on loopback for the alerts tests: an SMTP sink (a minimal SMTP server
in a thread, speaking the protocol Django's SMTP backend uses) and a webhook receiver
(http.server in a thread) that records each request, and builders of metric rows."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from apps.monitoring.models import ContainerSample, Series
from apps.tenants.models import Environment, Tenant

# --- SMTP sink -----------------------------------------------------------------------------------


@dataclass
class Mailbox:
    messages: list = field(default_factory=list)  # email.message.Message, one per DATA


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Enough of RFC 5321 for a client that sends EHLO, MAIL, RCPT, DATA, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 sink ESMTP")
        recipients: list[str] = []
        while line := self.rfile.readline():
            verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 sink")
            elif verb in ("MAIL", "RSET", "NOOP"):
                recipients = []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(line.decode().split(":", 1)[1].strip(" <>\r\n"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                message = message_from_bytes(data, policy=policy.default)
                message["X-Sink-Recipients"] = ", ".join(recipients)
                self.server.mailbox.messages.append(message)
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not here")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def smtp_sink(settings) -> Iterator[Mailbox]:
    server = _SmtpServer(("127.0.0.1", 0), _SmtpHandler)
    server.mailbox = Mailbox()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.server_address[1]
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    yield server.mailbox
    server.shutdown()
    server.server_close()


# --- webhook receiver ----------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    requests: list = field(default_factory=list)  # (headers dict, body bytes, answered status)
    fail_first: int = 0  # answer 500 to this many requests first


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        receiver: Receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = 500 if len(receiver.requests) < receiver.fail_first else 204
        receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.BERTH_ALERTS_WEBHOOK_ALLOW_LOOPBACK = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    server.daemon_threads = True
    server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook?x=1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()


# --- metric rows ---------------------------------------------------------------------------------


def container_series(
    tenant: Tenant,
    environment: Environment,
    name: str,
    *,
    stack_pk: int | None = None,
    service: str = "web",
    now: datetime | None = None,
) -> Series:
    now = now or timezone.now()
    return Series.objects.create(
        kind=Series.Kind.CONTAINER,
        key=f"c1:{name}",
        tenant=tenant,
        tenant_slug=tenant.slug,
        environment_pk=environment.pk,
        environment_slug=environment.slug,
        stack_pk=stack_pk,
        stack_name="shop",
        service_name=service,
        name=name,
        first_seen_at=now,
        last_seen_at=now,
    )


def sample(series: Series, at: datetime, **figures) -> ContainerSample:
    Series.objects.filter(pk=series.pk, last_seen_at__lt=at).update(last_seen_at=at)
    return ContainerSample.objects.create(series=series, tier=0, at=at, **figures)
