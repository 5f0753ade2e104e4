"""Publishing to the catalog: templates, immutable versions, sharing and approval.

A tenant member publishes a template (an uploaded compose file plus metadata, or a
running stack's compose and answers); it is private to the tenant until an admin of
the platform approves a request to make it public. Once public, what other tenants see
has been reviewed: a new version, new metadata or a new readme waits for an admin (the
approved versions and metadata stay listed meanwhile). A published version never changes:
its content is hashed, and the same version string is refused a second time. Every
version is checked as the loader checks built-ins: berth.yml read, the compose file
loaded with placeholder answers and held to the policy of an ordinary tenant.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from apps.activity.services import record_event
from apps.catalog.models import Template, TemplateVersion
from apps.catalog.questions import (
    Question,
    VersionConfig,
    config_of,
    dump_berth_yml,
    looks_secret,
)
from apps.catalog.validation import SLUG_RE, check_template_meta, check_version_files, is_emoji
from apps.core.roles import Role
from apps.core.tenancy import require_role

DEFAULT_ICON = "📦"
IMMUTABLE_MESSAGE = (
    "Version {version} of {slug} is already published and cannot change: "
    "publish a new version instead."
)


@dataclass(frozen=True)
class CheckedVersion:
    """A version's content after every check, ready to be stored."""

    version: str
    compose: str
    berth_yml: str
    config: VersionConfig
    content_hash: str


def content_hash(compose: str, berth_yml: str) -> str:
    """The README's hash: per-file sha256 under the file's name, so no two splits collide.

    README.md, template.yml and the icon are template-level and may change any time.
    """
    lines = b""
    for name, text in (("docker-compose.yml", compose), ("berth.yml", berth_yml)):
        inner = hashlib.sha256((text or "").encode()).hexdigest()
        lines += name.encode() + b"\0" + inner.encode() + b"\n"
    return hashlib.sha256(lines).hexdigest()


def refuse_changed(existing: TemplateVersion, digest: str, compose: str, where: str) -> str:
    """ "" when the stored version has this content, else the README's refusal naming the file."""
    if existing.content_hash == digest:
        return ""
    changed = "docker-compose.yml" if existing.compose != compose else "berth.yml"
    return (
        f"{existing.template.slug} {existing.version}: content changed since publication "
        f"(published {existing.content_hash[:12]}, now {digest[:12]}; {where}/{changed} "
        "differs): publish a new version instead"
    )


def _siblings(template: Template | None) -> dict[str, VersionConfig]:
    if template is None or template.pk is None:
        return {}
    return {v.version: config_of(v) for v in template.versions.all()}


def check_version(
    version: str, compose: str, berth_yml: str = "", template: Template | None = None
) -> CheckedVersion:
    """Validate one version as the loader does; ValidationError keyed version/berth/compose."""
    version = str(version or "").strip()
    siblings = _siblings(template)
    report = check_version_files(compose, berth_yml, version=version, siblings=siblings)
    if report.errors:
        raise ValidationError(report.errors)
    return CheckedVersion(
        version, compose, berth_yml, report.config, content_hash(compose, berth_yml)
    )


def _metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Publish metadata: a slug plus template.yml's keys (icon and tags optional here)."""
    data = {
        "icon": DEFAULT_ICON,
        "tags": [],
        **{k: v for k, v in metadata.items() if v is not None},
    }
    slug = data.pop("slug", "")
    if isinstance(data.get("tags"), str):
        data["tags"] = [t.strip() for t in data["tags"].split(",") if t.strip()]
    if data.get("homepage") == "":
        data.pop("homepage")
    if not data.get("icon"):
        data["icon"] = DEFAULT_ICON
    values, problems = check_template_meta(data, source="")
    if not isinstance(slug, str) or not SLUG_RE.match(slug) or len(slug) > 40:
        problems.append("slug: lowercase letters and digits, separated by hyphens (at most 40)")
    if not is_emoji(values.get("icon")):
        problems.append("icon: a single emoji")
    if problems:
        raise ValidationError({"template": problems})
    return {**values, "slug": slug}


def is_listed(template: Template) -> bool:
    """A tenant's template other tenants see: what changes in it needs a review first."""
    return (
        template.pk is not None
        and template.publisher_id is not None
        and template.visibility == Template.Visibility.PUBLIC
        and template.approval == Template.Approval.APPROVED
    )


# What a publisher may change on a template after publication (the slug never changes).
REVIEWED_FIELDS = (
    "name",
    "category",
    "description",
    "icon",
    "maintainer",
    "homepage",
    "tags",
    "readme",
)


def _update_metadata(template: Template, values: dict[str, Any]) -> None:
    """Live at once on a template no other tenant sees; on a listed one, kept in
    `pending_metadata` until an admin approves (the approved values stay shown)."""
    values = {k: v for k, v in values.items() if k in REVIEWED_FIELDS}
    if not is_listed(template):
        for key, value in values.items():
            setattr(template, key, value)
        return
    kept = {k: v for k, v in template.pending_metadata.items() if k not in values}
    changed = {k: v for k, v in values.items() if getattr(template, k) != v}
    template.pending_metadata = {**kept, **changed}


def _check_template(template: Template) -> None:
    """The model's checks on the template as it will be once its pending metadata is live."""
    candidate = copy.copy(template)
    for key, value in template.pending_metadata.items():
        setattr(candidate, key, value)
    try:
        candidate.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise ValidationError({"template": exc.messages}) from None


def _store_version(
    template: Template, checked: CheckedVersion, actor: Any, readme: str
) -> TemplateVersion:
    if template.pk and template.versions.filter(version=checked.version).exists():
        raise ValidationError(
            {"version": IMMUTABLE_MESSAGE.format(version=checked.version, slug=template.slug)}
        )
    review = Template.Approval.PENDING if is_listed(template) else Template.Approval.NOT_REQUESTED
    return TemplateVersion.objects.create(
        template=template,
        version=checked.version,
        compose=checked.compose,
        config=checked.config.to_dict(),
        questions=[q.to_dict() for q in checked.config.questions],
        readme=readme,
        content_hash=checked.content_hash,
        review=review,
        published_by=actor if getattr(actor, "is_authenticated", False) else None,
    )


def _publish_event(actor: Any, template: Template, stored: TemplateVersion) -> None:
    waits = " (waiting for an admin's review)" if stored.review == Template.Approval.PENDING else ""
    record_event(
        "catalog.template.publish",
        actor=actor,
        tenant=template.publisher,
        obj=template,
        message=f"Published {template.slug} {stored.version}{waits}",
        data={
            "version": stored.version,
            "visibility": template.visibility,
            "review": stored.review,
        },
    )


def _visibility(visibility: str) -> str:
    if visibility not in Template.Visibility.values:
        choices = ", ".join(Template.Visibility.values)
        raise ValidationError({"visibility": f"Choose one of: {choices}."})
    return visibility


@transaction.atomic
def publish_template(
    actor: Any,
    tenant: Any,
    metadata: dict[str, Any],
    version: str,
    compose: str,
    berth_yml: str = "",
    readme: str = "",
    visibility: str = Template.Visibility.TENANT,
) -> TemplateVersion:
    """Publish `version` of the tenant's template `metadata["slug"]` (created if new).

    Metadata of an existing template is updated with the new version's (on a listed
    public template: once an admin approves, like the version itself). Asking for public
    visibility puts the template in the platform admins' approval queue.
    """
    require_role(actor, tenant, Role.MEMBER)
    problems: dict[str, list[str]] = {}  # the metadata's and the files' at once

    def collect(check: Any, *args: Any) -> Any:
        try:
            return check(*args)
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                problems.setdefault(key, []).extend(messages)
            return None

    values = collect(_metadata, metadata) or {}
    visibility = collect(_visibility, visibility)
    template = (
        Template.objects.select_for_update()
        .filter(publisher=tenant, slug=values.get("slug", metadata.get("slug") or ""))
        .first()
    )
    collect(_refuse_existing, template, version)
    checked = collect(check_version, version, compose, berth_yml, template)
    if problems:
        raise ValidationError(problems)
    created = template is None
    template = template or Template(publisher=tenant, slug=values["slug"])
    _update_metadata(template, {**values, **({"readme": readme} if readme else {})})
    if visibility == Template.Visibility.PUBLIC and template.approval != Template.Approval.APPROVED:
        template.approval = Template.Approval.PENDING
    if created or visibility == Template.Visibility.PUBLIC:
        template.visibility = visibility
    _check_template(template)
    template.save()
    stored = _store_version(template, checked, actor, readme)
    _publish_event(actor, template, stored)
    return stored


def _refuse_existing(template: Template | None, version: str) -> None:
    """A published version is immutable: the same version string is refused, first."""
    version = str(version or "").strip()
    if template is not None and template.versions.filter(version=version).exists():
        raise ValidationError(
            {"version": IMMUTABLE_MESSAGE.format(version=version, slug=template.slug)}
        )


@transaction.atomic
def publish_version(
    actor: Any,
    template: Template,
    version: str,
    compose: str,
    berth_yml: str = "",
    readme: str = "",
) -> TemplateVersion:
    """A new version of an existing tenant template (built-ins come from catalog/ only)."""
    if template.publisher_id is None:
        raise PermissionDenied("Built-in templates are published from the catalog folder.")
    require_role(actor, template.publisher, Role.MEMBER)
    template = Template.objects.select_for_update().get(pk=template.pk)
    _refuse_existing(template, version)
    checked = check_version(version, compose, berth_yml, template)
    if readme:
        _update_metadata(template, {"readme": readme})
        template.save(update_fields=["readme", "pending_metadata", "updated_at"])
    stored = _store_version(template, checked, actor, readme)
    _publish_event(actor, template, stored)
    return stored


def _require_publisher_role(actor: Any, template: Template, role: str) -> None:
    if template.publisher_id is None:
        _require_platform_admin(actor)
    else:
        require_role(actor, template.publisher, role)


def _require_platform_admin(actor: Any) -> None:
    if not (getattr(actor, "is_superuser", False) and actor.is_active):
        raise PermissionDenied("Only platform admins review templates.")


@transaction.atomic
def request_public(actor: Any, template: Template) -> Template:
    """Ask for the template to be listed for every tenant; admins approve or reject."""
    _require_publisher_role(actor, template, Role.ADMIN)
    if template.approval == Template.Approval.APPROVED and template.visibility == "public":
        return template
    template.visibility = Template.Visibility.PUBLIC
    template.approval = Template.Approval.PENDING
    template.save(update_fields=["visibility", "approval", "updated_at"])
    _review_event("catalog.template.request_public", actor, template, "Asked to make it public")
    return template


@transaction.atomic
def make_private(actor: Any, template: Template) -> Template:
    """Withdraw a template from the public catalog (stacks deployed from it keep running)."""
    _require_publisher_role(actor, template, Role.ADMIN)
    if template.publisher_id is None:
        raise ValidationError({"visibility": "Built-in templates are always public."})
    template = Template.objects.select_for_update().get(pk=template.pk)
    template.visibility = Template.Visibility.TENANT
    template.approval = Template.Approval.NOT_REQUESTED
    _apply_pending_metadata(template)  # nobody else sees it now
    template.save()
    template.versions.filter(review=Template.Approval.PENDING).update(
        review=Template.Approval.NOT_REQUESTED
    )
    _review_event("catalog.template.make_private", actor, template, "Made private")
    return template


def has_changes_to_review(template: Template) -> bool:
    """A listed template with a new version or new metadata an admin has not seen."""
    return is_listed(template) and (
        bool(template.pending_metadata)
        or template.versions.filter(review=Template.Approval.PENDING).exists()
    )


def _apply_pending_metadata(template: Template) -> None:
    for key, value in template.pending_metadata.items():
        if key in REVIEWED_FIELDS:
            setattr(template, key, value)
    template.pending_metadata = {}


def _review(actor: Any, template: Template, approval: str, reason: str = "") -> Template:
    """One decision on everything waiting: the template itself (its first review, with all
    its versions) or, on a listed one, its new versions and metadata."""
    _require_platform_admin(actor)
    template = Template.objects.select_for_update().get(pk=template.pk)
    changes = has_changes_to_review(template)
    if template.approval != Template.Approval.PENDING and not changes:
        raise ValidationError({"approval": "This template is not waiting for a review."})
    approved = approval == Template.Approval.APPROVED
    waiting = template.versions.filter(
        review__in=(Template.Approval.PENDING, Template.Approval.NOT_REQUESTED)
    )
    versions = [v.version for v in waiting.order_by("pk")]
    if approved:
        _apply_pending_metadata(template)
        waiting.update(review=Template.Approval.APPROVED)
    elif changes:  # the listed template stays as approved; the changes are turned down
        template.pending_metadata = {}
        waiting.filter(review=Template.Approval.PENDING).update(review=Template.Approval.REJECTED)
    if template.approval == Template.Approval.PENDING:
        template.approval = approval
    template.save()
    verb = "Approved" if approved else "Rejected"
    what = f"changes ({', '.join(versions) or 'metadata'})" if changes else "for the public catalog"
    message = f"{verb} {what}" + (f": {reason}" if reason else "")
    _review_event(f"catalog.template.{approval}", actor, template, message)
    return template


@transaction.atomic
def approve_template(actor: Any, template: Template) -> Template:
    """A platform admin lets a pending template into the public catalog."""
    return _review(actor, template, Template.Approval.APPROVED)


@transaction.atomic
def reject_template(actor: Any, template: Template, reason: str = "") -> Template:
    """A platform admin refuses a pending template; it stays private to its tenant."""
    return _review(actor, template, Template.Approval.REJECTED, reason)


def _review_event(action: str, actor: Any, template: Template, message: str) -> None:
    record_event(action, actor=actor, tenant=template.publisher, obj=template, message=message)


# --- save a running stack as a template -------------------------------------------------------


def _stack_questions(stack: Any) -> VersionConfig:
    """The stack's questions with its answers as defaults; secrets never become defaults.

    A template's password and secret questions stay without a default; a compose stack's
    variables that look secret (`looks_secret`) become password questions without one.
    """
    if stack.template_version is None:
        return VersionConfig(
            questions=tuple(
                _compose_question(name, value)
                for name, value in sorted((stack.answers or {}).items())
            )
        )
    config = config_of(stack.template_version)
    answers = stack.answers or {}
    questions = []
    for question in config.questions:
        values = question.to_dict()
        if not question.is_secret and question.variable in answers:
            values["default"] = str(answers[question.variable])
        questions.append(Question.from_dict(values))
    return VersionConfig(questions=tuple(questions), services=config.services)


def _compose_question(name: str, value: Any) -> Question:
    if value not in (None, "") and looks_secret(name, value):
        return Question(variable=name, label=name, type="password", required=True)
    return Question(variable=name, label=name, default=str(value))


def stack_metadata(stack: Any) -> dict[str, Any]:
    """What a template saved from `stack` says about itself unless the user says more:
    the source template's category, icon and tags, or plain defaults for a compose file."""
    source = stack.template_version.template if stack.template_version else None
    return {
        "name": stack.name,
        "category": source.category if source else "other",
        "description": f"Saved from the stack {stack.name} of {stack.tenant.name}.",
        "icon": (source.icon if source and is_emoji(source.icon) else DEFAULT_ICON),
        "maintainer": stack.tenant.name[:120],
        "tags": list(source.tags or []) if source else [],
    }


def _by_metadata_field(exc: ValidationError) -> ValidationError:
    """`{"template": ["slug: ..."]}` -> `{"slug": ["..."]}`: the save form asks for these
    keys one by one, so each message belongs under its own field."""
    if not hasattr(exc, "error_dict"):
        return exc
    errors: dict[str, list[str]] = {}
    for key, messages in exc.message_dict.items():
        for message in messages:
            field, _, text = message.partition(": ")
            if key == "template" and text and field in _METADATA_FIELDS:
                errors.setdefault(field, []).append(text)
            else:
                errors.setdefault(key, []).append(message)
    return ValidationError(errors)


_METADATA_FIELDS = ("slug", "name", "category", "description", "icon", "maintainer", "tags")


def save_as_template(
    actor: Any,
    stack: Any,
    metadata: dict[str, Any],
    version: str,
    readme: str = "",
    visibility: str = Template.Visibility.TENANT,
) -> TemplateVersion:
    """Publish a running stack's compose file, its answers becoming the defaults.

    `metadata` needs only the slug: missing or empty keys come from `stack_metadata`.
    """
    require_role(actor, stack.tenant, Role.MEMBER)
    given = {k: v for k, v in (metadata or {}).items() if v not in (None, "", [])}
    metadata = {**stack_metadata(stack), **given}
    compose = stack.compose or (stack.template_version.compose if stack.template_version else "")
    berth_yml = dump_berth_yml(_stack_questions(stack))
    try:
        published = publish_template(
            actor, stack.tenant, metadata, version, compose, berth_yml, readme, visibility
        )
    except ValidationError as exc:
        raise _by_metadata_field(exc) from exc
    record_event(
        "catalog.template.save_from_stack",
        actor=actor,
        tenant=stack.tenant,
        obj=published.template,
        message=f"Saved stack {stack.name} as {published.template.slug} {version}",
    )
    return published
