"""One evaluation pass: observe every enabled rule, move each rule's alerts through
their states (`rules.next_state`), and queue the notifications those moves call for.

Safe to run twice and after a crash: the whole pass is one transaction that first locks
the enabled rules (a second pass waits, then sees the first one's alerts), the open
alerts are read `select_for_update`, a partial unique constraint allows one open alert
per rule and subject, and a delivery is unique per alert, channel and event. Sending
happens after commit (apps.alerts.delivery), from the deliveries written here.
The number of queries does not grow with rules, subjects or samples.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.alerts.models import Alert, AlertRule, Delivery, Silence
from apps.alerts.observe import Observation, observe
from apps.alerts.rules import next_state
from apps.core.queue import enqueue_on_commit

GONE = Observation("", None, False, "no longer measured")


@dataclass
class PassResult:
    """What a pass did (the task's return value and the tests' check)."""

    opened: int = 0
    fired: int = 0
    resolved: int = 0
    dropped: int = 0
    deliveries: int = 0
    changed: list[Alert] = field(default_factory=list)


def silenced_until(alert: Alert, silences: list[Silence]) -> datetime | None:
    ends = [s.ends_at for s in silences if s.tenant_id == alert.tenant_id and s.matches(alert)]
    return max(ends) if ends else None


def payload(alert: Alert, rule: AlertRule, event: str) -> dict:
    """The JSON a webhook receives (and the text an e-mail says), fixed when queued."""
    return {
        "event": event,
        "alert": alert.pk,
        "state": alert.state,
        "tenant": rule.tenant.slug,
        "environment": rule.environment.slug if rule.environment_id else None,
        "rule": {"id": rule.pk, "name": rule.name, "kind": rule.kind},
        "subject": alert.subject,
        "subject_key": alert.subject_key,
        "value": alert.value,
        "threshold": rule.threshold,
        "message": alert.message,
        "started_at": alert.started_at.isoformat(),
        "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


class Pass:
    """The state of one pass between reading and writing."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.result = PassResult()
        self.new: list[Alert] = []
        self.updated: list[Alert] = []
        self.dropped: list[int] = []
        self.notify: list[tuple[Alert, AlertRule, str]] = []

    def step(self, rule: AlertRule, key: str, seen: Observation, alert: Alert | None) -> None:
        """Move one rule's alert on one subject (or open one)."""
        now = self.now
        current = alert.state if alert else None
        state = next_state(
            current, seen.condition, alert.started_at if alert else None, now, rule.duration_seconds
        )
        if alert is None:
            if state is None:
                return
            alert = Alert(tenant_id=rule.tenant_id, rule=rule, subject_key=key, started_at=now)
            self.new.append(alert)
            self.result.opened += 1
        elif state is None:
            self.dropped.append(alert.pk)
            self.result.dropped += 1
            return
        else:
            subject = (seen.subject or alert.subject)[:300]
            if (state, subject, seen.value, seen.message[:500]) == (
                alert.state,
                alert.subject,
                alert.value,
                alert.message,
            ):
                return  # unchanged: no write (a steady pass writes nothing)
            self.updated.append(alert)
        alert.state, alert.evaluated_at = state, now
        alert.subject = (seen.subject or alert.subject)[:300]
        alert.value, alert.message = seen.value, seen.message[:500]
        if state == Alert.State.FIRING and current != Alert.State.FIRING:
            alert.fired_at = now
            self.result.fired += 1
            self.notify.append((alert, rule, Delivery.Event.FIRING))
        elif state == Alert.State.RESOLVED:
            alert.resolved_at = now
            self.result.resolved += 1
            self.notify.append((alert, rule, Delivery.Event.RESOLVED))


def evaluate(now: datetime | None = None, *, send: bool = True) -> PassResult:
    """One pass over every enabled rule (the beat task `alerts.evaluate`)."""
    now = now or timezone.now()
    with transaction.atomic():
        rules = list(
            AlertRule.objects.select_for_update(of=("self",))
            .filter(enabled=True)
            .select_related("tenant", "environment")
            .order_by("pk")
        )
        if not rules:
            return PassResult()
        by_pk = {rule.pk: rule for rule in rules}
        seen = observe(rules, now)
        open_alerts = {
            (a.rule_id, a.subject_key): a
            for a in Alert.objects.select_for_update().filter(rule__in=rules, state__in=Alert.OPEN)
        }
        work = Pass(now)
        for rule in rules:
            keys = set(seen[rule.pk]) | {k for (r, k) in open_alerts if r == rule.pk}
            for key in sorted(keys):
                work.step(rule, key, seen[rule.pk].get(key, GONE), open_alerts.get((rule.pk, key)))
        # Alerts whose rule was disabled meanwhile are left as they are (no pass judges them).
        silences = list(
            Silence.objects.filter(tenant_id__in={r.tenant_id for r in rules}, ends_at__gt=now)
        )
        for alert in (*work.new, *work.updated):
            alert.silenced_until = silenced_until(alert, silences)
        _write(work)
        work.result.deliveries = _queue_deliveries(work, by_pk)
        if send and work.result.deliveries:
            from apps.alerts import tasks

            enqueue_on_commit(tasks.deliver)
    work.result.changed = [*work.new, *work.updated]
    return work.result


def _write(work: Pass) -> None:
    if work.new:
        Alert.objects.bulk_create(work.new)
    if work.updated:
        Alert.objects.bulk_update(
            work.updated,
            [
                "state",
                "evaluated_at",
                "subject",
                "value",
                "message",
                "fired_at",
                "resolved_at",
                "silenced_until",
            ],
        )
    if work.dropped:
        Alert.objects.filter(pk__in=work.dropped).delete()


def _queue_deliveries(work: Pass, rules: dict[int, AlertRule]) -> int:
    """One delivery per channel of the rule for each alert that fired or resolved, unless
    silenced; a resolution goes only where the firing went."""
    if not work.notify:
        return 0
    through = AlertRule.channels.through.objects.filter(alertrule_id__in=list(rules))
    channels: dict[int, list[int]] = defaultdict(list)
    for rule_id, channel_id in through.values_list("alertrule_id", "alertchannel_id"):
        channels[rule_id].append(channel_id)
    resolving = [a.pk for a, _, event in work.notify if event == Delivery.Event.RESOLVED]
    told = set(
        Delivery.objects.filter(alert_id__in=resolving, event=Delivery.Event.FIRING).values_list(
            "alert_id", "channel_id"
        )
    )
    rows = []
    for alert, rule, event in work.notify:
        if event == Delivery.Event.FIRING and alert.silenced_until:
            continue
        for channel_id in channels.get(rule.pk, []):
            if event == Delivery.Event.RESOLVED and (alert.pk, channel_id) not in told:
                continue
            rows.append(
                Delivery(
                    tenant_id=alert.tenant_id,
                    channel_id=channel_id,
                    alert=alert,
                    event=event,
                    payload=payload(alert, rule, event),
                    next_attempt_at=work.now,
                )
            )
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
