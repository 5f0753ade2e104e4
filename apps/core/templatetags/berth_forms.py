"""Form rendering helpers: the error summary at the top of a refused form and the
autofocus on its first field in error, so a person lands where the first problem is.

Django (5.0+) already marks a field in error with aria-invalid and points its
aria-describedby at `<id>_error`; field.html gives the messages that id.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms, template

register = template.Library()


@dataclass(frozen=True)
class SummaryLine:
    """One message of the summary; `target` is the id of the field to jump to ("" for a
    message about the whole form or a hidden field)."""

    label: str
    message: str
    target: str


def first_invalid(form: forms.BaseForm) -> str | None:
    """The name of the first visible field (in the form's order) that has an error."""
    for bound in form.visible_fields():
        if bound.errors:
            return bound.name
    return None


@register.simple_tag
def error_summary(form: forms.BaseForm | None) -> list[SummaryLine]:
    """Every message of a refused form, the form's own first, then field by field."""
    if form is None or not form.is_bound or not form.errors:
        return []
    lines = [SummaryLine("", str(m), "") for m in form.non_field_errors()]
    for bound in form:
        target = "" if bound.is_hidden else bound.id_for_label
        label = str(bound.label or bound.name)
        lines.extend(SummaryLine(label, str(m), target) for m in bound.errors)
    return lines


@register.simple_tag
def form_widget(bound: forms.BoundField) -> str:
    """The field's widget; the form's first field in error gets autofocus, so a refused
    submit opens with the cursor on it (also without JavaScript)."""
    attrs = {}
    if bound.errors and first_invalid(bound.form) == bound.name:
        attrs["autofocus"] = True
    return bound.as_widget(attrs=attrs) if attrs else str(bound)
