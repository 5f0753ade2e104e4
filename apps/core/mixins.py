"""The HTML side of tenancy: every page over tenant-owned objects uses this mixin."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied

from apps.core.roles import Role


class TenantScopedMixin(LoginRequiredMixin):
    """Limits the view's queryset to what the user may see; foreign objects are 404."""

    model = None
    min_role = Role.VIEWER

    def get_queryset(self):
        return self.model.objects.visible_to(self.request.user, self.min_role)


class PlatformAdminMixin(LoginRequiredMixin):
    """Pages for platform operators (superusers) only; others get 404 (not a hint)."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not request.user.is_superuser:
            from django.http import Http404

            raise Http404("No such page.")
        return super().dispatch(request, *args, **kwargs)


def form_errors_from(exc, form) -> None:
    """Copy a service-layer ValidationError onto a form, field by field."""
    if hasattr(exc, "error_dict"):
        for field, messages in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
    else:
        form.add_error(None, exc.messages)


__all__ = ["TenantScopedMixin", "PlatformAdminMixin", "PermissionDenied", "form_errors_from"]
