"""Sending the queued deliveries: e-mail through Django's configured mail backend (the
EMAIL_* settings), webhooks as a signed JSON POST; retries with exponential back-off.

Workers claim a due delivery with a conditional update (its next attempt moved a lease
ahead), so two workers never send the same one at once and a worker killed mid-send
leaves it due again after the lease: delivery is at least once. The outcome of every
attempt (status, error, attempt count, next attempt) is on the row: the delivery log.

Webhook targets are checked when the channel is saved and again, after resolving the
name, right before connecting, and the connection goes to the address checked (no
second lookup a DNS answer could change): never a link-local address (cloud metadata
at 169.254.169.254), multicast, unspecified or reserved one; loopback only with
BERTH_ALERTS_WEBHOOK_ALLOW_LOOPBACK, private networks only with
BERTH_ALERTS_WEBHOOK_ALLOW_PRIVATE. Redirects are not followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from apps.alerts import channels
from apps.alerts.models import AlertChannel, Delivery
from apps.alerts.rules import backoff, signature

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """An attempt that failed: `status` is the receiver's HTTP status, when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --- where a webhook may go ----------------------------------------------------------------------


def address_refusal(address: str) -> str | None:
    """Why a webhook may not connect to `address`, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return "a link-local address (such as cloud metadata)"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "not a unicast address"
    if ip.is_loopback:
        return None if settings.BERTH_ALERTS_WEBHOOK_ALLOW_LOOPBACK else "a loopback address"
    if ip.is_private or not ip.is_global:
        return None if settings.BERTH_ALERTS_WEBHOOK_ALLOW_PRIVATE else "a private address"
    return None


def resolve_target(host: str, port: int) -> str:
    """The address to connect to: every address the name resolves to must be allowed
    (a name with one private answer among public ones is refused)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise DeliveryError(f"cannot resolve {host}: {exc}") from exc
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        why = address_refusal(address)
        if why:
            raise DeliveryError(f"refused: {host} resolves to {why} ({address})")
    return addresses[0]


def post_webhook(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` to `url` through the checked address; the HTTP status."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    address = resolve_target(host, port)
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
        if https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout
            )
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        path = parts.path or "/"
        conn.request("POST", f"{path}?{parts.query}" if parts.query else path, body, headers)
        response = conn.getresponse()
        response.read(4096)
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status < 300:
        raise DeliveryError(f"HTTP {response.status} {response.reason}", response.status)
    return response.status


# --- one attempt ---------------------------------------------------------------------------------


def render_email(data: dict) -> tuple[str, str]:
    state = "FIRING" if data["event"] == "firing" else "RESOLVED"
    subject = f"[Berth] {state}: {data['rule']['name']} · {data['subject']}"
    lines = [
        f"{state}: {data['rule']['name']} ({data['rule']['kind']})",
        f"Tenant: {data['tenant']}"
        + (f", environment {data['environment']}" if data["environment"] else ""),
        f"Subject: {data['subject']}",
        f"What: {data['message']}",
        f"Since: {data['started_at']}",
    ]
    if data.get("resolved_at"):
        lines.append(f"Resolved: {data['resolved_at']}")
    return subject[:200], "\n".join(lines) + "\n"


def send(delivery: Delivery) -> int | None:
    """One attempt; raises DeliveryError. The HTTP status for a webhook."""
    channel = delivery.channel
    if channel.kind == AlertChannel.Kind.EMAIL:
        subject, text = render_email(delivery.payload)
        try:
            connection = get_connection(timeout=settings.BERTH_ALERTS_SEND_TIMEOUT)
            EmailMessage(
                subject, text, to=channels.addresses(channel.target), connection=connection
            ).send()
        except Exception as exc:  # smtplib, socket and backend errors alike
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        return None
    body = json.dumps(delivery.payload, sort_keys=True).encode()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Berth-Alerts",
        "X-Berth-Event": delivery.event,
        "X-Berth-Delivery": str(delivery.pk),
        "X-Berth-Timestamp": str(stamp),
        "X-Berth-Signature": signature(channels.secret_of(channel), stamp, body),
    }
    return post_webhook(channel.target, body, headers, settings.BERTH_ALERTS_SEND_TIMEOUT)


def claim(pk: int, now: datetime) -> bool:
    """Take a due delivery for one attempt (a conditional update: one worker wins)."""
    lease = now + timedelta(seconds=settings.BERTH_ALERTS_SEND_TIMEOUT + 30)
    return bool(
        Delivery.objects.filter(
            pk=pk, state=Delivery.State.PENDING, next_attempt_at__lte=now
        ).update(next_attempt_at=lease)
    )


def attempt(pk: int, now: datetime | None = None) -> Delivery:
    """Send one claimed delivery and record the outcome on its row."""
    delivery = Delivery.objects.select_related("channel").get(pk=pk)
    now = now or timezone.now()
    delivery.attempts += 1
    try:
        delivery.last_status = send(delivery)
    except DeliveryError as exc:
        delivery.last_status, delivery.last_error = exc.status, str(exc)[:500]
        if delivery.attempts >= settings.BERTH_ALERTS_MAX_ATTEMPTS:
            delivery.state = Delivery.State.FAILED
        else:
            wait = backoff(
                delivery.attempts,
                settings.BERTH_ALERTS_RETRY_BASE_SECONDS,
                settings.BERTH_ALERTS_RETRY_MAX_SECONDS,
            )
            delivery.next_attempt_at = now + timedelta(seconds=wait)
        log.info("alert delivery %s failed (attempt %s): %s", pk, delivery.attempts, exc)
    else:
        delivery.state, delivery.sent_at, delivery.last_error = Delivery.State.SENT, now, ""
    delivery.save(
        update_fields=[
            "attempts",
            "last_status",
            "last_error",
            "state",
            "next_attempt_at",
            "sent_at",
            "updated_at",
        ]
    )
    return delivery


def deliver_due(now: datetime | None = None, limit: int = 100, budget: float = 60.0) -> int:
    """Attempt every delivery due now (at most `limit`, for at most `budget` seconds: a
    task well inside its time limit; the rest wait for the next run); how many were
    attempted."""
    now = now or timezone.now()
    started = time.monotonic()
    due = list(
        Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    done = 0
    for pk in due:
        if time.monotonic() - started > budget:
            break
        with transaction.atomic():
            claimed = claim(pk, now)
        if claimed:
            attempt(pk, now)
            done += 1
    return done
