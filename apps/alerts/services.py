"""Every change to alerting goes through here, from the portal and the API alike: rules,
channels, silences, acknowledgement. Each checks the caller's role in the tenant
(members and above change things; viewers read), validates with one set of messages
keyed by field, and records an activity event.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.activity.services import record_event
from apps.alerts import channels as channel_rules
from apps.alerts.evaluation import silenced_until
from apps.alerts.models import Alert, AlertChannel, AlertRule, Silence
from apps.alerts.rules import KIND_FIELDS, METRICS
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments.models import Stack
from apps.tenants.models import Environment, Tenant

MAX_DURATION = 7 * 86400
MAX_SILENCE = 90 * 86400
# Percent thresholds; a disk rule at 0 % would fire on every host.
THRESHOLD_RANGES = {"registry_quota": (0.0, 100.0), "disk_full": (1.0, 100.0)}
RULE_DEFAULTS = {
    "metric": "",
    "comparison": AlertRule.Comparison.GT,
    "threshold": 0.0,
    "duration_seconds": 0,
    "window_seconds": 0,
}


# --- rules ---------------------------------------------------------------------------------------


def _raw_retention() -> int:
    from apps.monitoring import tiers

    return tiers.configured()[0].retention


def _clean_number(errors: dict, name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors[name] = ["Enter a number."]
        return 0.0
    if not math.isfinite(number) or not low <= number <= high:
        errors[name] = [f"Use a number from {low:g} to {high:g}."]
    return number


def _clean_scope(tenant: Tenant, kind: str, data: dict[str, Any], errors: dict) -> dict:
    """Environment, stack and service: the tenant's own, and consistent."""
    environment, stack = data.get("environment"), data.get("stack")
    if environment is not None and environment.tenant_id != tenant.pk:
        errors["environment"] = ["No such environment."]
    if stack is not None and (
        stack.environment.tenant_id != tenant.pk
        or (environment is not None and stack.environment_id != environment.pk)
    ):
        errors["stack"] = ["No such stack in this scope."]
    elif stack is not None and kind not in ("metric", "restarts", "flapping", "certificate"):
        errors["stack"] = ["This kind of rule is not about a stack."]
    service_name = (data.get("service_name") or "").strip()
    if service_name and stack is None:
        errors["service_name"] = ["Name the stack of the service too."]
    elif len(service_name) > 100:
        errors["service_name"] = ["At most 100 characters."]
    return {"environment": environment, "stack": stack, "service_name": service_name}


def _clean_condition(kind: str, data: dict[str, Any], errors: dict) -> dict:
    """The fields the kind reads (`KIND_FIELDS`); the others keep their defaults."""
    cleaned = dict(RULE_DEFAULTS)
    fields = KIND_FIELDS[kind]
    if "metric" in fields:
        if data.get("metric") not in METRICS:
            errors["metric"] = ["Choose one of: " + ", ".join(METRICS)]
        else:
            cleaned["metric"] = data["metric"]
        if data.get("comparison") not in AlertRule.Comparison.values:
            errors["comparison"] = ["Choose gt, ge, lt or le."]
        else:
            cleaned["comparison"] = data["comparison"]
    if "threshold" in fields:
        low, high = THRESHOLD_RANGES.get(kind, (0.0, 1e15))
        cleaned["threshold"] = _clean_number(errors, "threshold", data.get("threshold"), low, high)
    if "duration_seconds" in fields:
        duration = data.get("duration_seconds") or 0
        cleaned["duration_seconds"] = int(
            _clean_number(errors, "duration_seconds", duration, 0, MAX_DURATION)
        )
    if "window_seconds" in fields:
        high = MAX_DURATION if kind == "hot_image" else _raw_retention()
        cleaned["window_seconds"] = int(
            _clean_number(errors, "window_seconds", data.get("window_seconds"), 60, high)
        )
    return cleaned


def clean_rule(tenant: Tenant, data: dict[str, Any]) -> dict[str, Any]:
    """The rule's fields, checked together: every problem in one ValidationError keyed by
    field. Fields the kind does not read are reset to their defaults."""
    errors: dict[str, list[str]] = {}
    kind = data.get("kind")
    if kind not in AlertRule.Kind.values:
        raise ValidationError({"kind": ["Choose one of: " + ", ".join(AlertRule.Kind.values)]})
    name = (data.get("name") or "").strip() if isinstance(data.get("name"), str) else ""
    if not name or len(name) > 100:
        errors["name"] = ["Enter a name of at most 100 characters."]
    cleaned = {
        "name": name,
        "kind": kind,
        **_clean_scope(tenant, kind, data, errors),
        **_clean_condition(kind, data, errors),
    }
    channels = list(data.get("channels") or [])
    if any(c.tenant_id != tenant.pk for c in channels):
        errors["channels"] = ["No such channel."]
    cleaned["channels"] = channels
    cleaned["enabled"] = bool(data.get("enabled", True))
    if errors:
        raise ValidationError(errors)
    return cleaned


def create_rule(actor: Any, tenant: Tenant, data: dict[str, Any]) -> AlertRule:
    require_role(actor, tenant, Role.MEMBER)
    cleaned = clean_rule(tenant, data)
    chosen = cleaned.pop("channels")
    with transaction.atomic():
        rule = AlertRule.objects.create(tenant=tenant, created_by=actor, **cleaned)
        rule.channels.set(chosen)
        record_event(
            "alert_rule.create",
            actor=actor,
            tenant=tenant,
            obj=rule,
            message=f"Alert rule {rule.name} created.",
        )
    return rule


#: What a rule's form and `update_rule` read and write (its channels aside).
RULE_FIELDS = (
    "name",
    "kind",
    "environment",
    "stack",
    "service_name",
    "metric",
    "comparison",
    "threshold",
    "duration_seconds",
    "window_seconds",
    "enabled",
)


def rule_settings(rule: AlertRule) -> dict[str, Any]:
    return {field: getattr(rule, field) for field in RULE_FIELDS}


def update_rule(actor: Any, rule: AlertRule, data: dict[str, Any]) -> AlertRule:
    """Change a rule (a partial `data` keeps the other fields). Disabling it, or changing
    what it watches, resolves its open alerts: the next pass judges afresh."""
    require_role(actor, rule.tenant, Role.MEMBER)
    current = rule_settings(rule)
    current["channels"] = list(rule.channels.all())
    cleaned = clean_rule(rule.tenant, {**current, **data})
    chosen = cleaned.pop("channels")
    watched = ("kind", "environment", "stack", "service_name", "metric")
    rewatch = any(cleaned[f] != current[f] for f in watched) or not cleaned["enabled"]
    with transaction.atomic():
        for name, value in cleaned.items():
            setattr(rule, name, value)
        rule.save()
        rule.channels.set(chosen)
        if rewatch:
            close_open_alerts(rule, "rule changed" if cleaned["enabled"] else "rule disabled")
        record_event(
            "alert_rule.update",
            actor=actor,
            tenant=rule.tenant,
            obj=rule,
            message=f"Alert rule {rule.name} changed.",
        )
    return rule


def close_open_alerts(rule: AlertRule, why: str) -> int:
    now = timezone.now()
    return Alert.objects.filter(rule=rule, state__in=Alert.OPEN).update(
        state=Alert.State.RESOLVED, resolved_at=now, evaluated_at=now, message=why
    )


def delete_rule(actor: Any, rule: AlertRule) -> None:
    require_role(actor, rule.tenant, Role.MEMBER)
    with transaction.atomic():
        record_event(
            "alert_rule.delete",
            actor=actor,
            tenant=rule.tenant,
            obj=rule,
            message=f"Alert rule {rule.name} deleted with its alerts.",
        )
        rule.delete()


# --- channels ------------------------------------------------------------------------------------


def create_channel(
    actor: Any, tenant: Tenant, *, name: str, kind: str, target: str, secret: str = ""
) -> tuple[AlertChannel, str]:
    """A new channel, and the webhook's secret (generated when none is given; the only
    time it is returned)."""
    require_role(actor, tenant, Role.MEMBER)
    errors: dict[str, list[str]] = {}
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 64:
        errors["name"] = ["Enter a name of at most 64 characters."]
    elif AlertChannel.objects.filter(tenant=tenant, name=name).exists():
        errors["name"] = [f"The tenant already has a channel named {name}."]
    try:
        target = channel_rules.clean_target(kind, target)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if kind == AlertChannel.Kind.WEBHOOK:
        try:
            secret = channel_rules.clean_secret(secret) if secret else channel_rules.new_secret()
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    encrypted = channel_rules.encrypt_secret(secret) if kind == AlertChannel.Kind.WEBHOOK else ""
    try:
        with transaction.atomic():
            channel = AlertChannel.objects.create(
                tenant=tenant, name=name, kind=kind, target=target, secret_encrypted=encrypted
            )
            record_event(
                "alert_channel.create",
                actor=actor,
                tenant=tenant,
                obj=channel,
                message=f"Alert channel {name} ({kind}) created.",
            )
    except IntegrityError:
        raise ValidationError(
            {"name": [f"The tenant already has a channel named {name}."]}
        ) from None
    return channel, (secret if kind == AlertChannel.Kind.WEBHOOK else "")


def update_channel(
    actor: Any, channel: AlertChannel, *, target: str | None = None, secret: str = ""
) -> AlertChannel:
    """A new target, or a new webhook secret (rotation); name and kind stay."""
    require_role(actor, channel.tenant, Role.MEMBER)
    if target is not None:
        channel.target = channel_rules.clean_target(channel.kind, target)
    if secret:
        if channel.kind != AlertChannel.Kind.WEBHOOK:
            raise ValidationError({"secret": ["Only a webhook has a secret."]})
        channel.secret_encrypted = channel_rules.encrypt_secret(channel_rules.clean_secret(secret))
    with transaction.atomic():
        channel.save()
        record_event(
            "alert_channel.update",
            actor=actor,
            tenant=channel.tenant,
            obj=channel,
            message=f"Alert channel {channel.name} changed.",
        )
    return channel


def delete_channel(actor: Any, channel: AlertChannel) -> None:
    require_role(actor, channel.tenant, Role.MEMBER)
    with transaction.atomic():
        record_event(
            "alert_channel.delete",
            actor=actor,
            tenant=channel.tenant,
            obj=channel,
            message=f"Alert channel {channel.name} deleted.",
        )
        channel.delete()


# --- acknowledgement and silences ----------------------------------------------------------------


def acknowledge(actor: Any, alert: Alert) -> Alert:
    """Someone is on it: the alert leaves the badge (it still resolves and notifies)."""
    require_role(actor, alert.tenant, Role.MEMBER)
    if alert.state == Alert.State.RESOLVED:
        raise ValidationError({"alert": ["This alert is resolved already."]})
    if alert.acknowledged_at is None:
        alert.acknowledged_by, alert.acknowledged_at = actor, timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
        record_event(
            "alert.acknowledge",
            actor=actor,
            tenant=alert.tenant,
            obj=alert,
            message=f"Alert {alert.rule.name} on {alert.subject} acknowledged.",
        )
    return alert


def clean_ends_at(value: Any, now: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError({"ends_at": ["Give the end time."]})
    if value <= now or value > now + timedelta(seconds=MAX_SILENCE):
        raise ValidationError({"ends_at": ["Choose a time in the future, at most 90 days ahead."]})
    return value


def create_silence(
    actor: Any,
    tenant: Tenant,
    *,
    ends_at: datetime,
    rule: AlertRule | None = None,
    subject_key: str = "",
    comment: str = "",
) -> Silence:
    """No notification for the matching alerts until `ends_at` (a rule, a subject, or
    both); their badge count drops at once."""
    require_role(actor, tenant, Role.MEMBER)
    now = timezone.now()
    ends_at = clean_ends_at(ends_at, now)
    if rule is not None and rule.tenant_id != tenant.pk:
        raise ValidationError({"rule": ["No such rule."]})
    subject_key = (subject_key or "").strip()[:200]
    if rule is None and not subject_key:
        raise ValidationError({"rule": ["Name a rule, a subject, or both."]})
    with transaction.atomic():
        silence = Silence.objects.create(
            tenant=tenant,
            rule=rule,
            subject_key=subject_key,
            ends_at=ends_at,
            comment=(comment or "")[:200],
            created_by=actor,
        )
        refresh_silences(tenant, now)
        record_event(
            "alert.silence",
            actor=actor,
            tenant=tenant,
            obj=silence,
            message=f"Alerts silenced until {ends_at:%Y-%m-%d %H:%M} UTC.",
        )
    return silence


def expire_silence(actor: Any, silence: Silence) -> Silence:
    require_role(actor, silence.tenant, Role.MEMBER)
    now = timezone.now()
    with transaction.atomic():
        if silence.ends_at > now:
            silence.ends_at = now
            silence.save(update_fields=["ends_at"])
        refresh_silences(silence.tenant, now)
        record_event(
            "alert.unsilence",
            actor=actor,
            tenant=silence.tenant,
            obj=silence,
            message="Silence ended.",
        )
    return silence


def refresh_silences(tenant: Tenant, now: datetime) -> None:
    """Recompute `silenced_until` of the tenant's open alerts (three queries)."""
    silences = list(Silence.objects.filter(tenant=tenant, ends_at__gt=now))
    alerts = list(Alert.objects.filter(tenant=tenant, state__in=Alert.OPEN))
    for alert in alerts:
        alert.silenced_until = silenced_until(alert, silences)
    Alert.objects.bulk_update(alerts, ["silenced_until"])


def firing_unacknowledged(queryset, now: datetime | None = None):
    """Firing, not acknowledged, not silenced: what the top bar's badge counts."""
    now = now or timezone.now()
    return queryset.filter(state=Alert.State.FIRING, acknowledged_at__isnull=True).filter(
        Q(silenced_until__isnull=True) | Q(silenced_until__lte=now)
    )


def environments_of(tenant: Tenant):
    return Environment.objects.filter(tenant=tenant).order_by("slug")


def stacks_of(tenant: Tenant):
    return Stack.objects.filter(environment__tenant=tenant).order_by("name")
