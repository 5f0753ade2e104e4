"""The app store: templates and their immutable, versioned content."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.tenancy import is_platform_admin, visible_tenant_ids
from apps.tenants.models import slug_validator


class TemplateQuerySet(models.QuerySet):
    def awaiting_review(self):
        """What platform admins have to look at: templates asking to be public, and public
        ones whose new versions or metadata wait to be let through."""
        approved = Q(visibility=Template.Visibility.PUBLIC, approval=Template.Approval.APPROVED)
        changes = Q(versions__review=Template.Approval.PENDING) | ~Q(pending_metadata={})
        return self.filter(Q(approval=Template.Approval.PENDING) | (approved & changes)).distinct()

    def visible_to(self, user, min_role: str = "viewer", token=None):
        """Approved public templates for every signed-in user, plus the tenant's own.

        Changing a template (min_role above viewer) needs that role in its publisher
        tenant; platform templates are changed by platform admins only.
        """
        if not (user and user.is_authenticated and user.is_active):
            return self.none()
        if is_platform_admin(user, token, min_role):
            return self
        own = Q(publisher__in=visible_tenant_ids(user, min_role, token))
        if min_role != "viewer":
            return self.filter(own)
        public = Q(visibility=Template.Visibility.PUBLIC, approval=Template.Approval.APPROVED)
        return self.filter(own | public)


class Template(models.Model):
    """A catalog entry: a microservice module that tenants answer questions for and deploy."""

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        TENANT = "tenant", "Private to the tenant"

    class Approval(models.TextChoices):
        APPROVED = "approved", "Approved"
        PENDING = "pending", "Waiting for an admin"
        REJECTED = "rejected", "Rejected"
        NOT_REQUESTED = "none", "Not requested"

    slug = models.CharField(max_length=40, validators=[slug_validator])
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=50, db_index=True)
    description = models.TextField(blank=True)
    icon = models.TextField(blank=True, help_text="An emoji, or SVG/PNG as a data URL")
    maintainer = models.CharField(max_length=200, blank=True)
    homepage = models.URLField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    readme = models.TextField(blank=True)
    publisher = models.ForeignKey(
        "tenants.Tenant",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="templates",
        help_text="Empty for the platform's built-in templates",
    )
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.TENANT
    )
    approval = models.CharField(
        max_length=10, choices=Approval.choices, default=Approval.NOT_REQUESTED
    )
    pending_metadata = models.JSONField(
        default=dict,
        blank=True,
        help_text="Metadata (and readme) published after approval, live once an admin approves",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TemplateQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["publisher", "slug"],
                name="unique_template_slug_per_publisher",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def publisher_name(self) -> str:
        return self.publisher.name if self.publisher_id else "Berth"


class TemplateVersionQuerySet(models.QuerySet):
    def visible_to(self, user, min_role: str = "viewer", token=None):
        """Versions of the templates `user` may see; of another tenant's public template,
        only the versions an admin approved (a new version waits for its review)."""
        templates = Template.objects.visible_to(user, min_role, token)
        versions = self.filter(template__in=templates)
        if is_platform_admin(user, token, min_role):
            return versions
        own = Q(template__publisher__in=visible_tenant_ids(user, min_role, token))
        reviewed = Q(template__publisher__isnull=True) | Q(review=Template.Approval.APPROVED)
        return versions.filter(own | reviewed)


class TemplateVersion(models.Model):
    """One published version: compose file, questions and upgrade rules, never edited.

    `content_hash` is taken at publication; the loader refuses a changed file for an
    existing version, so a deployed stack can always be traced to exact content.
    """

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=40)
    compose = models.TextField()
    config = models.JSONField(default=dict, blank=True, help_text="berth.yml, parsed")
    questions = models.JSONField(default=list, blank=True)
    readme = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64)
    review = models.CharField(
        max_length=10,
        choices=Template.Approval.choices,
        default=Template.Approval.NOT_REQUESTED,
        help_text="Approved: other tenants may see it (versions of a public template)",
    )
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    published_at = models.DateTimeField(auto_now_add=True)

    objects = TemplateVersionQuerySet.as_manager()

    class Meta:
        ordering = ["template", "-published_at"]
        constraints = [
            models.UniqueConstraint(fields=["template", "version"], name="unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.template.slug} {self.version}"
