"""The order of a template's versions, and which of them a stack may move to.

One ordering serves every list and choice: the catalog's version list, the newest version
a deploy request gets when it names none, the upgrade targets offered on a stack's page
and the versions whose migrations an upgrade applies. Versions are semver; one that is
not (a hand-loaded or old row) sorts below every semver one, and publication time breaks
ties. Deployments import these rules; nothing here knows about stacks.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from apps.catalog import semver
from apps.catalog.models import Template, TemplateVersion
from apps.catalog.questions import config_of


def version_key(version: Any) -> tuple:
    """Sort key of a version (a TemplateVersion, or anything with `version`)."""
    published = getattr(version, "published_at", None)
    try:
        return (1, semver.parse_version(str(getattr(version, "version", ""))), published)
    except ValueError:
        return (0, semver.parse_version("0"), published)


def newest_first(versions: Any) -> list:
    return sorted(versions, key=version_key, reverse=True)


def is_newer(current: Any, target: Any) -> bool:
    """`target` comes after `current`: by semver, else by publication time."""
    try:
        return semver.parse_version(target.version) > semver.parse_version(current.version)
    except ValueError:
        return target.published_at > current.published_at


def can_upgrade(from_version: Any, to_version: Any) -> bool:
    """May a stack on `from_version` move to `to_version`? Only as its `upgrade_from` says.

    Both must belong to the same template (when they say which), the target must be
    newer, and the source must match one item of the target's `upgrade_from`; without
    `upgrade_from` there is no upgrade into a version (catalog/README.md).
    """
    source = getattr(from_version, "template_id", None)
    target = getattr(to_version, "template_id", None)
    if source is not None and target is not None and source != target:
        return False
    old, new = config_of(from_version), config_of(to_version)
    try:
        if not semver.parse_version(new.version) > semver.parse_version(old.version):
            return False
        return any(semver.matches(old.version, rule) for rule in new.upgrade_from)
    except ValueError:
        return False


def upgrade_problem(current: TemplateVersion, target: TemplateVersion) -> str | None:
    """Why `target` cannot follow `current`, or None: `can_upgrade`, explained."""
    if can_upgrade(current, target):
        return None
    if target.template_id != current.template_id:
        return "That version belongs to another template."
    if not is_newer(current, target):
        return f"Version {target.version} is not newer than {current.version}."
    return f"Version {target.version} cannot upgrade from {current.version}."


def upgrade_targets(current: TemplateVersion | None, actor: Any = None) -> list[TemplateVersion]:
    """Versions of `current`'s template (those `actor` may see) that may follow it, newest
    first."""
    if current is None:
        return []
    versions = TemplateVersion.objects.filter(template=current.template)
    if actor is not None:
        versions = versions & TemplateVersion.objects.visible_to(actor)
    return newest_first(v for v in versions if upgrade_problem(current, v) is None)


def find_template_version(
    actor: Any, tenant: Any, slug: str, version: str | None = None, token: Any = None
) -> TemplateVersion:
    """The version a deploy request names: the tenant's own template of that slug first,
    else the platform's; the newest version when none is given. Errors name the field."""
    visible = Template.objects.visible_to(actor, token=token).filter(slug=slug)
    template = visible.filter(publisher=tenant).first() or visible.filter(publisher=None).first()
    if template is None:
        template = visible.order_by("pk").first()
    if template is None:
        raise ValidationError({"template": f"No template '{slug}'."})
    versions = list(
        TemplateVersion.objects.visible_to(actor, token=token).filter(template=template)
    )
    if version:
        found = next((v for v in versions if v.version == version), None)
        if found is None:
            raise ValidationError({"version": f"{slug} has no version '{version}'."})
        return found
    if not versions:
        raise ValidationError({"template": f"{slug} has no published version."})
    return max(versions, key=version_key)
