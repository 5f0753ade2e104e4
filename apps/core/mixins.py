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


def form_errors_from(exc, form, names: dict | None = None, only_new: bool = False) -> None:
    """Copy a service-layer ValidationError onto a form, field by field.

    `names` maps the service's keys to the form's fields (name -> stack_name). With
    `only_new`, a field that already has an error (the form's own, more basic one) gets
    no second one, and a message already shown is not repeated.
    """
    names = names or {}
    pairs = (
        [(names.get(key, key), messages) for key, messages in exc.message_dict.items()]
        if hasattr(exc, "error_dict")
        else [(None, exc.messages)]
    )
    for key, messages in pairs:
        field = key if key in form.fields else None
        if only_new:
            if field is not None and form.has_error(field):
                continue
            shown = set(form.errors.get(field or "__all__", ()))
            messages = [m for m in messages if m not in shown]
            if not messages:
                continue
        form.add_error(field, messages)


__all__ = ["TenantScopedMixin", "PlatformAdminMixin", "PermissionDenied", "form_errors_from"]
