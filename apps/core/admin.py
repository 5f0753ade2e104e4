"""Helpers shared by every app's admin: admin changes go through the service layer.

The Django admin is a superuser's back door, but it still calls the same services as
the portal and the API, so rules (last owner, TLS all-or-nothing...) and Events apply.
"""

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError


def error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        return " ".join(exc.messages)
    return str(exc) or "Not allowed."


def run_for_each(
    modeladmin: admin.ModelAdmin,
    request: Any,
    objects: Iterable[Any],
    operation: Callable[[Any], Any],
    done_message: str,
) -> int:
    """Apply a service call to each object; refusals become messages, never a 500."""
    done = 0
    for obj in objects:
        try:
            operation(obj)
        except (ValidationError, PermissionDenied) as exc:
            modeladmin.message_user(request, f"{obj}: {error_text(exc)}", messages.ERROR)
        else:
            done += 1
    if done:
        modeladmin.message_user(request, done_message.format(count=done), messages.SUCCESS)
    return done


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browse and search only; changes happen through the portal and its services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
