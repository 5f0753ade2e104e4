"""Every change to a stack goes through here: deploy, redeploy, upgrade, roll back, scale,
stop, start, restart, remove and cancel.

Each function checks the actor's role, validates, and in one transaction writes the
desired state, a new immutable Revision (when the spec changes) and an Event; then it
queues `reconcile_stack` once the transaction has committed, so the worker never reads
a state that is not there yet. Requests never talk to Docker: the reconciler does.

Roles: viewers read; members deploy, scale, stop, start, restart, upgrade, redeploy,
roll back and cancel; admins remove.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.module_loading import import_string

from apps.activity.models import Event
from apps.activity.services import record_event
from apps.catalog.answers import (
    interpolation_values,
    migrate_answers,
    resolve_answers,
    sample_answers,
)
from apps.catalog.models import TemplateVersion
from apps.catalog.questions import config_of, question_names, secret_names, secret_values
from apps.catalog.versions import upgrade_problem
from apps.compose.errors import ComposeError
from apps.compose.policy import RULES, check_policy
from apps.core.queue import enqueue_on_commit
from apps.core.roles import Role
from apps.core.tenancy import require_role
from apps.deployments import exceptions, quotas, revisions, routes, secret_store
from apps.deployments.health import apply_health_checks
from apps.deployments.models import (
    Container,
    Revision,
    Route,
    Service,
    Stack,
    dns_label_validator,
)
from apps.deployments.revisions import MASK, is_secret_name
from apps.deployments.spec import (
    berth_spec,
    build_spec,
    check_deploy_settings,
    project_from_spec,
    routes_of,
    service_hash,
    with_strategy,
)
from apps.deployments.swarm_reconcile import check_swarm_spec, targets_swarm
from apps.deployments.swarm_tasks import action_problem
from apps.deployments.tasks import container_action, reconcile_stack
from apps.tenants.models import Environment

MAX_REPLICAS = 50
_MISSING_VARIABLE = re.compile(r"variable '(\w+)'")


# --- helpers --------------------------------------------------------------------------------


def operation_timeout() -> int:
    """Seconds an operation may take before anyone reading the stack marks it failed."""
    return settings.BERTH_OPERATION_TIMEOUT


def _compose_error(exc: ComposeError, questions: set[str], field: str) -> ValidationError:
    """Compose problems -> field errors: a missing answer names its question, else `field`."""
    errors: dict[str, list[str]] = {}
    for problem in exc.problems:
        match = _MISSING_VARIABLE.search(problem.message)
        key = match.group(1) if match and match.group(1) in questions else field
        errors.setdefault(key, []).append(problem.message)
    return ValidationError(errors)


def interpolation_variables(
    environment: Environment, stack_name: str, answers: dict, version: TemplateVersion | None
) -> dict:
    """What `${VAR}` means in the stack's compose file (catalog/README.md, Interpolation):
    the answers, minus those of questions hidden by show_if, plus Berth's own variables."""
    values = interpolation_values(version, answers) if version is not None else dict(answers)
    return {
        **values,
        "BERTH_STACK_NAME": stack_name,
        "BERTH_ENVIRONMENT": environment.slug,
        "BERTH_TENANT": environment.tenant.slug,
        "BERTH_REGISTRY": settings.BERTH_REGISTRY_ADDR,
    }


def render_spec(
    actor: Any,
    environment: Environment,
    *,
    compose: str,
    answers: dict,
    version: TemplateVersion | None = None,
    stack_name: str = "",
) -> dict:
    """The Revision spec for this compose text and answers, or a ValidationError.

    Policy exceptions come from the environment; platform admins may pass every rule.
    The exceptions the spec uses are recorded in it (apps.deployments.exceptions); a
    member refused only what a platform admin granted this stack is told so.
    """
    variables = interpolation_variables(environment, stack_name, answers, version)
    try:
        spec = build_spec(
            compose, variables, environment, allow_all=bool(getattr(actor, "is_superuser", False))
        )
    except ComposeError as exc:
        current = Stack.objects.filter(environment=environment, name=stack_name).first()
        _explain_admin_exceptions(exc, getattr(current, "current_revision", None))
        raise _compose_error(exc, question_names(version), "compose") from exc
    project = project_from_spec(spec)
    on_swarm = targets_swarm(environment) is not None
    check_deploy_settings(project, swarm=on_swarm)
    if on_swarm:  # only a subset runs on a swarm: the rest is refused per field (issue 14)
        check_swarm_spec(environment, spec)
    secret_store.check_references(environment, spec)
    berth_services = config_of(version).services if version is not None else None
    spec["berth"] = berth_spec(project, berth_services, variables)
    spec = _template_scale(spec, version)
    spec = apply_health_checks(spec, version.config if version is not None else None)
    return _record_exceptions(actor, environment, spec)


def _record_exceptions(actor: Any, environment: Environment, spec: dict) -> dict:
    """spec["berth"]["exceptions"]: every exception to the policy the spec uses and who
    granted it (none: no key, so specs without exceptions stay as they were). A platform
    admin's are also in spec["admin_exceptions"], which the driver reads."""
    found = exceptions.compute(
        project_from_spec(spec),
        interface=environment.publish_interface,
        granted=environment.policy_exceptions or (),
    )
    berth = spec.setdefault("berth", {})
    if found:
        berth["exceptions"] = found
    else:
        berth.pop("exceptions", None)
    admin_rules = {e["rule"] for e in exceptions.by_admin(found)}
    if admin_rules and getattr(actor, "is_superuser", False):
        spec["admin_exceptions"] = sorted(admin_rules | set(spec.get("admin_exceptions") or ()))
    return spec


def _explain_admin_exceptions(exc: ComposeError, revision: Revision | None) -> None:
    """A policy refusal of only what a platform admin granted `revision` (the stack's
    current one, or the one rolled back to) is that, said plainly: a ValidationError."""
    if revision is None or not revision.spec.get("admin_exceptions"):
        return
    refused = {p.rule for p in exc.problems}
    granted = set(revision.spec["admin_exceptions"])
    if "" in refused or not refused <= granted:
        return  # a problem of its own (syntax, another rule): the usual message
    recorded = [e for e in exceptions.of_spec(revision.spec) if e["rule"] in refused]
    if not recorded:  # stored before exceptions were recorded: the rules' names
        recorded = [
            {"what": p.message, "kind": "rule", "name": p.rule, "rule": p.rule}
            for p in exc.problems
        ]
    stack = revision.stack
    current = stack.current_revision_id == revision.pk
    raise ValidationError(
        exceptions.refusal_message(recorded, revision=None if current else revision.number)
    )


def _confirm_exceptions(actor: Any, stack: Stack, spec: dict) -> None:
    """A Revision that brings exceptions only the actor's platform admin role grants
    (new ones: the current revision did not use them) needs the admin's confirmation."""
    _record_exceptions(actor, stack.environment, spec)
    previous = stack.current_revision.spec if stack.current_revision_id else None
    before = exceptions.of_spec(previous)
    if previous is not None and not before:
        before = exceptions.compute(
            project_from_spec(previous),
            interface=stack.environment.publish_interface,
            granted=stack.environment.policy_exceptions or (),
        )
    needed = exceptions.new_ones(exceptions.of_spec(spec), before)
    if needed and not exceptions.is_confirmed():
        raise ValidationError({exceptions.CONFIRM_FIELD: exceptions.confirmation_message(needed)})


def _exceptions_event(spec: dict) -> tuple[str, dict]:
    """(message suffix, event data) naming the exceptions a new revision uses."""
    used = exceptions.of_spec(spec)
    if not used:
        return "", {}
    return (
        f"; uses exceptions to the compose policy: {exceptions.describe(used)}",
        {"exceptions": used},
    )


def check_spec_policy(
    actor: Any, environment: Environment, spec: dict, revision: Revision | None = None
) -> None:
    """Judge a stored spec again with today's policy (rollback and scale reuse old specs,
    and the environment's exceptions may have been withdrawn since). `revision` is where
    the spec comes from: a member refused what a platform admin granted it is told so."""
    allowed = (
        set(RULES)
        if getattr(actor, "is_superuser", False)
        else set(environment.policy_exceptions or ())
    )
    project = project_from_spec(spec)
    problems = check_policy(
        project,
        allowed_exceptions=allowed,
        allowed_interfaces={environment.publish_interface},
    )
    if problems:
        _explain_admin_exceptions(ComposeError(problems), revision)
        raise _compose_error(ComposeError(problems), set(), "compose")
    on_swarm = targets_swarm(environment) is not None
    check_deploy_settings(project, swarm=on_swarm)
    if on_swarm:
        check_swarm_spec(environment, spec)
    secret_store.check_references(environment, spec)


def _template_scale(spec: dict, version: TemplateVersion | None) -> dict:
    """berth.yml's per-service `scale` applies where the compose file sets no replicas."""
    settings_of = ((version.config or {}).get("services") or {}) if version else {}
    defaults = {
        name: conf["scale"]
        for name, conf in settings_of.items()
        if isinstance(conf, dict)
        and isinstance(conf.get("scale"), int)
        and ((revisions.services_of(spec).get(name) or {}).get("deploy") or {}).get("replicas")
        is None
    }
    return _apply_scale(spec, defaults) if defaults else spec


def resolve(version: TemplateVersion, answers: dict | None, previous: dict | None = None) -> dict:
    """Validated answers (generated passwords kept from `previous`), the catalog's rules."""
    return resolve_answers(version, dict(answers or {}), previous=previous)


def _start_operation(stack: Stack, operation: str, state: str) -> None:
    now = timezone.now()
    stack.operation = operation
    stack.operation_started_at = now
    stack.operation_deadline = now + timedelta(seconds=operation_timeout())
    stack.cancel_requested = False
    stack.state = state
    stack.state_reason = ""


def _queue_reconcile(stack: Stack) -> None:
    """Ask the worker to converge the stack, once this transaction is committed.

    With Redis down the change is kept and the periodic reconcile picks it up.
    """
    enqueue_on_commit(reconcile_stack, stack.pk)


def _sync_services(stack: Stack, spec: dict) -> None:
    """Service rows follow the spec: the pages and the scale endpoint need them at once."""
    services = revisions.services_of(spec)
    for name, service in services.items():
        Service.objects.update_or_create(
            stack=stack,
            name=name,
            defaults={"image": service.get("image") or "", "scale": revisions.replicas_of(service)},
        )
    dropped = stack.services.exclude(name__in=list(services))
    for route in Route.objects.filter(service__in=dropped, origin=Route.Origin.USER):
        # The route goes with its service: say so, or it would vanish from the page.
        record_event(
            "route.delete",
            tenant=stack.tenant,
            obj=route,
            message=f"Removed the route {route} with its service {route.service.name}",
            data={"hostname": route.hostname, "path": route.path, "service": route.service.name},
        )
    if dropped.filter(routes__isnull=False).exists():
        routes.notify_frontier(stack.pk, "service removed")
    dropped.delete()
    routes.release_unused_claims(stack.tenant)


def _new_revision(
    actor: Any, stack: Stack, spec: dict, *, reason: str, summary_prefix: str = ""
) -> Revision:
    """Write the next immutable Revision and make it the stack's current one."""
    _confirm_exceptions(actor, stack, spec)
    previous = stack.current_revision
    last = stack.revisions.order_by("-number").values_list("number", flat=True).first() or 0
    summary, changes = revisions.summarize(
        previous.spec if previous else None,
        spec,
        previous.answers if previous else None,
        stack.answers,
        secret_names(stack.template_version, stack.answers)
        | secret_names(
            getattr(previous, "template_version", None), getattr(previous, "answers", None)
        ),
    )
    if summary_prefix:
        summary = f"{summary_prefix}: {summary}"
    revision = Revision.objects.create(
        stack=stack,
        number=last + 1,
        spec=spec,
        template_version=stack.template_version,
        answers=stack.answers,
        compose=stack.compose,
        summary=summary,
        changes=changes,
        reason=reason,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    stack.current_revision = revision
    _sync_services(stack, spec)
    _forget_replacements(stack, previous.spec if previous else None, spec)
    routes.sync_template_routes(stack, spec, actor=actor)
    return revision


def _forget_replacements(stack: Stack, before: dict | None, after: dict) -> None:
    """A change to a flapping service is the fix being tried: its replacement count
    starts again, so the new containers are judged on their own health (else the
    redeploy would wait, reported unhealthy, until the flapping window ends)."""
    if before is None:
        return
    changed = [
        name
        for name in revisions.services_of(after)
        if name not in revisions.services_of(before)
        or service_hash(before, name) != service_hash(after, name)
    ]
    if changed:
        stack.services.filter(name__in=changed).exclude(replacements=[], flapping=False).update(
            replacements=[], flapping=False
        )


def _locked(stack: Stack) -> Stack:
    """The stack row, locked until the transaction ends: revision numbers never collide."""
    return Stack.objects.select_for_update().get(pk=stack.pk)


def _require_not_removed(stack: Stack) -> None:
    if stack.desired_state == Stack.Desired.REMOVED:
        raise ValidationError("This stack is being removed.")


def _event(action: str, actor: Any, stack: Stack, message: str, **data: Any) -> None:
    record_event(
        action, actor=actor, tenant=stack.tenant, obj=stack, message=message, data=data or None
    )


def _apply_scale(spec: dict, scale: dict[str, int]) -> dict:
    """A copy of `spec` with these per-service replica counts (services still present)."""
    spec = copy.deepcopy(spec)
    for name, replicas in scale.items():
        project = spec.get("project") if isinstance(spec.get("project"), dict) else spec
        service = (project.get("services") or {}).get(name)
        if service is not None:
            service.setdefault("deploy", {})
            if service["deploy"] is None:
                service["deploy"] = {}
            service["deploy"]["replicas"] = replicas
    return spec


def user_scale(actor: Any, stack: Stack) -> dict[str, int]:
    """Services the user scaled away from what the stack's source gives: their edits.

    The baseline is the spec rendered again from the stack's template (or compose) and
    answers; a service whose current replica count differs was scaled by a person.
    """
    current = stack.current_revision
    if current is None:
        return {}
    try:
        baseline = render_spec(
            actor,
            stack.environment,
            compose=stack.compose,
            answers=stack.answers,
            version=stack.template_version,
            stack_name=stack.name,
        )
    except ValidationError:
        baseline = {}
    base = revisions.services_of(baseline)
    return {
        name: revisions.replicas_of(service)
        for name, service in revisions.services_of(current.spec).items()
        if name not in base or revisions.replicas_of(base[name]) != revisions.replicas_of(service)
    }


# --- create -----------------------------------------------------------------------------------


def _check_name(environment: Environment, name: str) -> None:
    try:
        dns_label_validator(name or "")
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from exc
    if Stack.objects.filter(environment=environment, name=name).exists():
        raise ValidationError({"name": "A stack with this name already exists here."})


def _check_version(actor: Any, version: TemplateVersion) -> None:
    if not TemplateVersion.objects.visible_to(actor).filter(pk=version.pk).exists():
        raise ValidationError({"template": "No such template."})


def _merge_errors(errors: dict[str, list[str]], exc: ValidationError) -> set[str]:
    """Add exc's messages to `errors` (keyed like a form; "__all__" for no field); a key
    already there keeps its first, more basic messages. Returns exc's keys."""
    found = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    for key, messages in found.items():
        if key not in errors:
            errors[key] = list(messages)
    return set(found)


def _prepare_stack(
    actor: Any,
    environment: Environment,
    name: str,
    template_version: TemplateVersion | None,
    answers: dict | None,
    compose: str | None,
) -> tuple[dict, str | None, dict | None]:
    """(answers, compose, spec) of a new stack, or one ValidationError naming every
    problem at once: the name, each answer and the rendered compose file. A person who
    fixes one mistake should not meet the next only on the following submit.

    A bad name or bad answers do not stop the render: it runs with a stand-in name and
    stand-in values for the bad answers (their problems are already reported), so the
    compose file's own problems are found in the same pass. `compose` None (a form
    whose compose field was refused) skips the render."""
    errors: dict[str, list[str]] = {}
    try:
        _check_name(environment, name)
    except ValidationError as exc:
        _merge_errors(errors, exc)
    render_answers = answers
    if template_version is not None:
        _check_version(actor, template_version)
        try:
            answers = render_answers = resolve(template_version, answers)
        except ValidationError as exc:
            bad = _merge_errors(errors, exc)
            samples = sample_answers(template_version)
            given = {k: v for k, v in (answers or {}).items() if k not in bad}
            stand_in = {**given, **{k: samples[k] for k in bad if k in samples}}
            try:
                render_answers = resolve(template_version, stand_in)
            except ValidationError:
                render_answers = None  # the answers' messages already say what is wrong
        compose = template_version.compose
    else:
        answers = render_answers = {str(k): v for k, v in (answers or {}).items()}
    spec = None
    if compose and render_answers is not None:
        try:
            spec = render_spec(
                actor,
                environment,
                compose=compose,
                answers=render_answers,
                version=template_version,
                stack_name="stack" if "name" in errors else name,
            )
        except ValidationError as exc:
            _merge_errors(errors, exc)
    if errors:
        raise ValidationError(errors)
    return answers or {}, compose, spec


def check_stack(
    actor: Any,
    environment: Environment,
    name: str,
    template_version: TemplateVersion | None = None,
    answers: dict | None = None,
    compose: str | None = None,
) -> None:
    """create_stack's checks without creating anything: a deploy form whose own checks
    failed runs them too, so one submit lists every problem."""
    require_role(actor, environment.tenant, Role.MEMBER)
    _prepare_stack(actor, environment, name, template_version, answers, compose)


@transaction.atomic
def create_stack(
    actor: Any,
    environment: Environment,
    name: str,
    template_version: TemplateVersion | None = None,
    answers: dict | None = None,
    compose: str | None = None,
) -> Stack:
    """Deploy a stack from a template version (answers validated) or from compose text.

    Every problem of the name, the answers and the rendered compose file is reported
    in one ValidationError (see _prepare_stack)."""
    require_role(actor, environment.tenant, Role.MEMBER)
    if (template_version is None) == (compose is None or compose == ""):
        raise ValidationError("Give either a template version or a compose file, not both.")
    answers, compose, spec = _prepare_stack(
        actor, environment, name, template_version, answers, compose
    )
    stack = Stack(
        tenant=environment.tenant,
        environment=environment,
        name=name,
        template_version=template_version,
        answers=answers,
        compose=compose,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    quotas.enforce(environment.tenant, spec)  # before anything is written
    _start_operation(stack, "deploy", Stack.State.DEPLOYING)
    stack.save()
    revision = _new_revision(actor, stack, spec, reason="deploy")
    stack.save(update_fields=["current_revision"])
    source = str(template_version) if template_version else "compose"
    note, data = _exceptions_event(spec)
    _event(
        "stack.create",
        actor,
        stack,
        f"Deployed {name} from {source}{note}",
        revision=revision.number,
        **data,
    )
    _queue_reconcile(stack)
    return stack


def stack_source(stack: Stack) -> str:
    """The compose text the stack renders from (a template's is copied at deploy time)."""
    return stack.compose or (stack.template_version.compose if stack.template_version else "")


# --- changes that make a new revision ---------------------------------------------------------


def _deploy_change(
    actor: Any,
    stack: Stack,
    spec: dict,
    *,
    reason: str,
    operation: str,
    message: str,
    summary_prefix: str = "",
) -> Stack:
    quotas.enforce(stack.tenant, spec, stack)  # before anything is written
    revision = _new_revision(actor, stack, spec, reason=reason, summary_prefix=summary_prefix)
    if stack.desired_state == Stack.Desired.RUNNING:
        _start_operation(stack, operation, Stack.State.DEPLOYING)
    stack.save()
    note, data = _exceptions_event(spec)
    _event(
        f"stack.{reason}",
        actor,
        stack,
        f"{message} (r{revision.number}){note}",
        revision=revision.number,
        **data,
    )
    _queue_reconcile(stack)
    return stack


def _redeploy_plan(
    actor: Any, stack: Stack, answers: dict | None, compose: str | None
) -> tuple[dict, dict, str]:
    """(spec, answers, compose text) a redeploy would write: redeploy and its preview share
    this, so a preview judges exactly what Apply would (answers, compose, policy, scale)."""
    if compose is not None:
        if stack.template_version is not None:
            raise ValidationError(
                {"compose": "This stack runs a template: change its answers or upgrade it."}
            )
        if not str(compose).strip():
            raise ValidationError({"compose": "Give the compose file."})
    keep = user_scale(actor, stack)
    if stack.template_version is not None:
        answers = resolve(
            stack.template_version, {**stack.answers, **(answers or {})}, previous=stack.answers
        )
    else:
        # As for a template: what is left out keeps its value; null removes a variable.
        merged = {**stack.answers, **{str(k): v for k, v in (answers or {}).items()}}
        answers = {k: v for k, v in merged.items() if v is not None}
    source = compose if compose is not None else stack_source(stack)
    spec = render_spec(
        actor,
        stack.environment,
        compose=source,
        answers=answers,
        version=stack.template_version,
        stack_name=stack.name,
    )
    return _apply_scale(spec, keep), answers, source


def _strategy_spec(stack: Stack, spec: dict, strategy: str | None) -> dict:
    """The spec rolled out with `strategy` this time (canary: the routed services)."""
    if not strategy:
        return spec
    routed = set(Route.objects.filter(stack=stack).values_list("service__name", flat=True))
    routed |= {name for name in revisions.services_of(spec) if routes_of(spec, name)}
    return with_strategy(spec, routed, strategy)


def change_preview(
    stack: Stack,
    spec: dict,
    answers: dict,
    compose: str,
    version: TemplateVersion | None = None,
) -> dict[str, Any]:
    """What writing (spec, answers, compose) would change on `stack`, secrets masked.

    `changes` and `summary` are the words the new Revision would carry, plus a
    "config" line for a service whose settings change in a way the summary has no word
    for (a command, an environment value); `changed` is False when nothing differs, so
    the portal can say so instead of writing an empty revision.
    """
    previous = stack.current_revision
    old_spec = previous.spec if previous else None
    version = version if version is not None else stack.template_version
    old_version = getattr(previous, "template_version", None) or stack.template_version
    names = secret_names(version, answers) | secret_names(old_version, stack.answers)
    summary, changes = revisions.summarize(old_spec, spec, stack.answers, answers, names)
    if old_spec is not None:
        listed = {c.get("service") for c in changes if c.get("service")}
        for name in sorted(set(revisions.services_of(old_spec)) & set(revisions.services_of(spec))):
            if name not in listed and service_hash(old_spec, name) != service_hash(spec, name):
                changes.append({"kind": "config", "service": name})
    compose_changed = stack.template_version is None and compose != stack.compose
    if compose_changed and not changes and spec == old_spec:
        changes.append({"kind": "compose"})
    version_changed = version != stack.template_version
    changed = bool(changes) or version_changed or spec != old_spec or answers != stack.answers
    lines = [_describe(c) for c in changes]
    if old_spec is not None:
        summary = "; ".join(lines) if lines else "No changes"
    hidden = secret_values(version, answers) + secret_values(old_version, stack.answers)
    # Generated passwords differ at each preview: the fingerprint sees them masked.
    exact = json.dumps(
        [
            previous.pk if previous else None,
            getattr(version, "pk", None),
            compose,
            revisions.masked_spec(spec, names, hidden),
            {k: MASK if is_secret_name(k, names) else v for k, v in answers.items()},
        ],
        sort_keys=True,
        default=str,
    )
    return {
        "changed": changed,
        # Names this change: Apply checks it, so what is applied is what was previewed.
        "fingerprint": salted_hmac("berth.deployments.preview", exact).hexdigest(),
        "summary": summary,
        "changes": changes,
        "lines": lines,
        # What a platform admin confirms before Apply (the current revision did not use it).
        "exceptions_needed": [
            exceptions.label(e)
            for e in exceptions.new_ones(exceptions.of_spec(spec), exceptions.of_spec(old_spec))
        ],
        "diff": revisions.diff(
            old_spec,
            spec,
            label_a=f"r{previous.number}" if previous else "none",
            label_b="new",
            secret_names=names,
            secret_values=hidden,
        ),
    }


def _describe(change: dict) -> str:
    if change.get("kind") == "config":
        return f"{change['service']}: settings changed (see the diff)"
    if change.get("kind") == "compose":
        return "compose file text changed (the services stay as they are)"
    return revisions.describe(change)


def preview_redeploy(
    actor: Any,
    stack: Stack,
    answers: dict | None = None,
    compose: str | None = None,
    strategy: str | None = None,
) -> dict[str, Any]:
    """What `redeploy` with these arguments would change, judged by the same rules
    (answers, compose, policy, quotas), writing nothing: see `change_preview`."""
    require_role(actor, stack.tenant, Role.MEMBER)
    with transaction.atomic():
        stack = Stack.objects.select_related("current_revision", "template_version").get(
            pk=stack.pk
        )
        _require_not_removed(stack)
        spec, answers, source = _redeploy_plan(actor, stack, answers, compose)
        _strategy_spec(stack, spec, strategy)  # a strategy that cannot act is refused here too
        quotas.enforce(stack.tenant, spec, stack)
        transaction.set_rollback(True)  # nothing was written; make sure nothing is
    return change_preview(stack, spec, answers, source)


@transaction.atomic
def redeploy(
    actor: Any,
    stack: Stack,
    answers: dict | None = None,
    strategy: str | None = None,
    compose: str | None = None,
) -> Stack:
    """Deploy again with changed answers (a new Revision); scale set by users is kept.

    `compose` replaces a compose stack's file (a template stack refuses it: its file is
    the template's). `strategy` ("rolling" or "canary") overrides berth.yml's for this
    change: a canary for the services that have a route.
    """
    require_role(actor, stack.tenant, Role.MEMBER)
    stack = _locked(stack)
    _require_not_removed(stack)
    spec, answers, source = _redeploy_plan(actor, stack, answers, compose)
    stack.answers = answers
    if stack.template_version is None:
        stack.compose = source
    spec = _strategy_spec(stack, spec, strategy)
    return _deploy_change(
        actor,
        stack,
        spec,
        reason="redeploy",
        operation="redeploy",
        message=f"Redeployed {stack.name}",
    )


def _upgrade_plan(
    actor: Any, stack: Stack, to_version: TemplateVersion, answers: dict | None
) -> tuple[dict, dict]:
    """(spec, answers) an upgrade to `to_version` would write; upgrade and its preview
    share this."""
    current = stack.template_version
    if current is None:
        raise ValidationError({"version": "This stack was not deployed from a template."})
    _check_version(actor, to_version)
    problem = upgrade_problem(current, to_version)
    if problem:
        raise ValidationError({"version": problem})
    keep = user_scale(actor, stack)
    carried = migrate_answers(current, to_version, dict(stack.answers))
    resolved = resolve(to_version, {**carried, **(answers or {})}, previous=carried)
    spec = render_spec(
        actor,
        stack.environment,
        compose=to_version.compose,
        answers=resolved,
        version=to_version,
        stack_name=stack.name,
    )
    return _apply_scale(spec, keep), resolved


def preview_upgrade(
    actor: Any, stack: Stack, to_version: TemplateVersion, answers: dict | None = None
) -> dict[str, Any]:
    """What `upgrade` would change, by the same rules, writing nothing."""
    require_role(actor, stack.tenant, Role.MEMBER)
    with transaction.atomic():
        stack = Stack.objects.select_related("current_revision", "template_version").get(
            pk=stack.pk
        )
        _require_not_removed(stack)
        spec, resolved = _upgrade_plan(actor, stack, to_version, answers)
        quotas.enforce(stack.tenant, spec, stack)
        transaction.set_rollback(True)
    return change_preview(stack, spec, resolved, to_version.compose, version=to_version)


@transaction.atomic
def upgrade(
    actor: Any, stack: Stack, to_version: TemplateVersion, answers: dict | None = None
) -> Stack:
    """Move the stack to a newer version of its template.

    Answers are carried over through the version's migrations (generated passwords are
    kept), `answers` fills the new questions, and services the user scaled keep their
    replica count.
    """
    require_role(actor, stack.tenant, Role.MEMBER)
    stack = _locked(stack)
    _require_not_removed(stack)
    current = stack.template_version
    spec, resolved = _upgrade_plan(actor, stack, to_version, answers)
    stack.template_version = to_version
    stack.compose = to_version.compose
    stack.answers = resolved
    return _deploy_change(
        actor,
        stack,
        spec,
        reason="upgrade",
        operation="upgrade",
        message=f"Upgraded {stack.name} from {current.version} to {to_version.version}",
        summary_prefix=f"Upgrade {current.version} → {to_version.version}",
    )


@transaction.atomic
def rollback(actor: Any, stack: Stack, revision: Revision) -> Stack:
    """Deploy an earlier revision again, as a new revision copying its spec and answers."""
    require_role(actor, stack.tenant, Role.MEMBER)
    stack = _locked(stack)
    _require_not_removed(stack)
    if revision.stack_id != stack.pk:
        raise ValidationError({"revision": "That revision belongs to another stack."})
    if stack.current_revision_id == revision.pk:
        raise ValidationError({"revision": "This revision is already the current one."})
    check_spec_policy(actor, stack.environment, revision.spec, revision)
    stack.template_version = revision.template_version
    stack.answers = revision.answers
    stack.compose = revision.compose
    return _deploy_change(
        actor,
        stack,
        copy.deepcopy(revision.spec),
        reason=f"rollback to r{revision.number}",
        operation="rollback",
        message=f"Rolled {stack.name} back to r{revision.number}",
        summary_prefix=f"Rollback to r{revision.number}",
    )


def _replicas(value: Any) -> int:
    try:
        replicas = int(value)
    except (TypeError, ValueError):
        raise ValidationError({"replicas": "Give a whole number."}) from None
    if not 0 <= replicas <= MAX_REPLICAS:
        raise ValidationError({"replicas": f"Give a number from 0 to {MAX_REPLICAS}."})
    return replicas


def check_scale(actor: Any, service: Service, replicas: Any) -> None:
    """Would `scale` accept `replicas` for this service today (range, policy, quota)?
    Writes nothing: the autoscaling settings check their maximum with it, so a
    maximum the tenant's quota or the policy refuses is said when it is set."""
    replicas = _replicas(replicas)
    stack = service.stack
    if stack.current_revision is None:
        raise ValidationError("This stack has no revision to scale.")
    spec = _apply_scale(stack.current_revision.spec, {service.name: replicas})
    check_spec_policy(actor, stack.environment, spec, stack.current_revision)
    quotas.enforce(stack.tenant, spec, stack)


def _manual_scale_checks(service: Service) -> None:
    """BERTH_MANUAL_SCALE_CHECKS: apps above this one that may refuse a person's scale
    (autoscaling refuses it while it manages the service), named in settings so that
    this layer imports none of them."""
    for path in settings.BERTH_MANUAL_SCALE_CHECKS:
        import_string(path)(service)


@transaction.atomic
def scale(actor: Any, service: Service, replicas: Any, *, automatic: str = "") -> Service:
    """Run `replicas` containers of one service (0 to 50): a new revision.

    `automatic` is the autoscaler's reason for the change: it acts as Berth itself
    (`actor` None: no role, the policy without a platform admin's exceptions), through
    this same function, quota and reconciler as a person; a person's scale of a service
    the autoscaler manages is refused by `_manual_scale_checks`."""
    stack = service.stack
    if not automatic:
        require_role(actor, stack.tenant, Role.MEMBER)
    replicas = _replicas(replicas)
    stack = _locked(stack)
    _require_not_removed(stack)
    if not automatic:
        _manual_scale_checks(service)
    if stack.current_revision is None:
        raise ValidationError("This stack has no revision to scale.")
    if replicas == service.scale:
        raise ValidationError({"replicas": f"{service.name} already runs {replicas}."})
    spec = _apply_scale(stack.current_revision.spec, {service.name: replicas})
    check_spec_policy(actor, stack.environment, spec, stack.current_revision)
    note = f" by autoscaling: {automatic}" if automatic else ""
    _deploy_change(
        actor,
        stack,
        spec,
        reason="scale",
        operation="scale",
        message=f"Scaled {service.name} from {service.scale} to {replicas}{note}",
    )
    return Service.objects.get(pk=service.pk)


# --- state changes without a new revision -----------------------------------------------------


def _set_desired(
    actor: Any,
    stack: Stack,
    *,
    desired: str,
    operation: str,
    state: str,
    message: str,
    role: str = Role.MEMBER,
    **extra: Any,
) -> Stack:
    require_role(actor, stack.tenant, role)
    stack = _locked(stack)
    _require_not_removed(stack)
    stack.desired_state = desired
    for field, value in extra.items():
        setattr(stack, field, value)
    _start_operation(stack, operation, state)
    stack.save()
    _event(f"stack.{operation}", actor, stack, message)
    _queue_reconcile(stack)
    return stack


@transaction.atomic
def stop(actor: Any, stack: Stack) -> Stack:
    """Stop every container; nothing is removed, `start` brings them back."""
    if stack.desired_state == Stack.Desired.STOPPED:
        raise ValidationError("This stack is already stopped.")
    return _set_desired(
        actor,
        stack,
        desired=Stack.Desired.STOPPED,
        operation="stop",
        state=Stack.State.STOPPING,
        message=f"Stopping {stack.name}",
    )


@transaction.atomic
def start(actor: Any, stack: Stack) -> Stack:
    return _set_desired(
        actor,
        stack,
        desired=Stack.Desired.RUNNING,
        operation="start",
        state=Stack.State.DEPLOYING,
        message=f"Starting {stack.name}",
    )


@transaction.atomic
def restart(actor: Any, stack: Stack) -> Stack:
    """Recreate every container of the current revision.

    Nothing in the spec changes, so no Revision: the stack's `operation` is "restart",
    which the reconciler reads as "restart each container once, then clear it".
    """
    if stack.desired_state != Stack.Desired.RUNNING:
        raise ValidationError("Start the stack before restarting it.")
    return _set_desired(
        actor,
        stack,
        desired=Stack.Desired.RUNNING,
        operation="restart",
        state=Stack.State.DEPLOYING,
        message=f"Restarting {stack.name}",
    )


@transaction.atomic
def remove(actor: Any, stack: Stack, volumes: bool = False) -> Stack:
    """Remove the stack's containers (and its volumes only when asked); the reconciler
    deletes the row once the engine is clean."""
    if volumes and stack.swarm_volume_node and targets_swarm(stack.environment) is not None:
        raise ValidationError(
            {
                "volumes": "Berth cannot remove volumes on a Swarm node: it reaches the "
                "cluster through its manager only, and a volume lives on its node's engine. "
                "Remove the stack keeping its volumes, then run `docker volume rm` on that "
                "node (the stack's events name it)."
            }
        )
    kept = "and its volumes" if volumes else "keeping its volumes"
    return _set_desired(
        actor,
        stack,
        desired=Stack.Desired.REMOVED,
        operation="remove",
        state=Stack.State.REMOVING,
        message=f"Removing {stack.name}, {kept}",
        role=Role.ADMIN,
        remove_volumes=bool(volumes),
    )


@transaction.atomic
def cancel(actor: Any, stack: Stack) -> Stack:
    """Ask the worker to stop the running operation at its next step."""
    require_role(actor, stack.tenant, Role.MEMBER)
    stack = _locked(stack)
    if not stack.operation:
        raise ValidationError("No operation is running on this stack.")
    stack.cancel_requested = True
    stack.save(update_fields=["cancel_requested", "updated_at"])
    _event("stack.cancel", actor, stack, f"Cancel requested for {stack.operation}")
    return stack


# --- one container -----------------------------------------------------------------------------

CONTAINER_VERBS = {
    "start": "Starting",
    "stop": "Stopping",
    "restart": "Restarting",
    "remove": "Removing",
}


@transaction.atomic
def _container_action(actor: Any, container: Container, action: str) -> Container:
    """Record the wish and queue the worker, which does the engine call under the stack's
    lease and reconciles. A stopped container is marked `user_stopped` so the reconciler
    leaves it stopped; starting or restarting clears the mark; a removed container's
    replica is created afresh by the reconciler (a clean recreate)."""
    stack = container.stack
    require_role(actor, stack.tenant, Role.MEMBER)
    refused = action_problem(container, action)
    if refused:  # a Swarm task: Swarm keeps its tasks
        raise ValidationError(refused)
    stack = _locked(stack)
    _require_not_removed(stack)
    container.user_stopped = action == "stop"
    Container.objects.filter(pk=container.pk).update(user_stopped=container.user_stopped)
    message = f"{CONTAINER_VERBS[action]} {container.name}"
    _event(f"container.{action}", actor, stack, message, container=container.name)
    enqueue_on_commit(container_action, container.pk, action)
    return container


def start_container(actor: Any, container: Container) -> Container:
    return _container_action(actor, container, "start")


def stop_container(actor: Any, container: Container) -> Container:
    return _container_action(actor, container, "stop")


def restart_container(actor: Any, container: Container) -> Container:
    return _container_action(actor, container, "restart")


def remove_container(actor: Any, container: Container) -> Container:
    return _container_action(actor, container, "remove")


def expire_operation(stack: Stack) -> bool:
    """Mark an operation past its deadline failed; True when it did.

    Called by whoever reads the stack (pages, API, reconciler), so no stack stays
    "upgrading" forever even when no worker is left to notice.
    """
    now = timezone.now()
    if not stack.operation or not stack.operation_deadline or stack.operation_deadline > now:
        return False
    with transaction.atomic():
        locked = Stack.objects.select_for_update().filter(pk=stack.pk).first()
        if locked is None or not locked.operation or locked.operation_deadline > now:
            return False
        operation = locked.operation
        reason = f"The {operation} did not finish within {operation_timeout()} seconds."
        Stack.objects.filter(pk=stack.pk).update(
            operation="",
            operation_deadline=None,
            cancel_requested=False,
            state=Stack.State.FAILED,
            state_reason=reason,
            updated_at=now,
        )
        record_event(
            f"stack.{operation}",
            tenant=locked.tenant,
            obj=locked,
            outcome=Event.Outcome.FAILURE,
            message=reason,
        )
    stack.refresh_from_db()
    return True
