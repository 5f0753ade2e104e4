"""Catalog forms: the deploy form built from a version's questions, and publishing.

The forms only collect text; every rule (types, bounds, patterns, show_if, generated
passwords) is applied by `answers.resolve_answers` inside the deploy service, whose
ValidationError lands on the field named after the question's variable.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from apps.catalog.questions import SECRET_TYPES, Question, config_of
from apps.catalog.validation import CATEGORIES
from apps.tenants.models import Environment

STACK_NAME_HELP = "Lowercase letters, digits and hyphens; unique in the environment."


def question_field(question: Question) -> forms.Field:
    """One form field per question type; checks are left to resolve_answers (so the
    field is never `required` for Django), but the label says what the question says."""
    field = _question_field(question)
    field.optional_label = not question.required  # type: ignore[attr-defined]
    if question.required and question.default not in (None, "") and question.type != "bool":
        left_empty = f"Left empty: {question.default}."
        field.help_text = " ".join(filter(None, [field.help_text, left_empty]))
    return field


def _question_field(question: Question) -> forms.Field:
    attrs: dict[str, Any] = {}
    if question.show_if:
        attrs["data-show-if"] = json.dumps({k: list(v) for k, v in question.show_if.items()})
    common = {"label": question.label, "required": False, "help_text": question.description}
    default = question.default
    if question.type == "bool":
        return forms.BooleanField(
            widget=forms.CheckboxInput(attrs), initial=bool(default), **common
        )
    if question.type == "enum":
        choices = [(o, o) for o in question.options]
        return forms.ChoiceField(
            choices=choices, widget=forms.Select(attrs), initial=default, **common
        )
    if question.type == "multiline":
        attrs["rows"] = 4
        return forms.CharField(widget=forms.Textarea(attrs), initial=default, strip=False, **common)
    if question.type in SECRET_TYPES:
        if question.type == "password" and not question.required:
            attrs["placeholder"] = "Leave empty to generate one"
        attrs["autocomplete"] = "new-password"
        return forms.CharField(widget=forms.PasswordInput(attrs), strip=False, **common)
    if question.type == "int":
        attrs["inputmode"] = "numeric"
    return forms.CharField(widget=forms.TextInput(attrs), initial=default, strip=False, **common)


class DeployForm(forms.Form):
    """Stack name, environment, then the version's questions (named by their variable)."""

    stack_name = forms.CharField(max_length=63, help_text=STACK_NAME_HELP, label="Stack name")
    environment = forms.ModelChoiceField(queryset=Environment.objects.none(), empty_label=None)

    def __init__(self, *args: Any, version: Any, environments: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        self.questions = config_of(version).questions
        for question in self.questions:
            self.fields[question.variable] = question_field(question)
        # The page shows questions group by group: the fields follow, so the first field
        # in error (focused after a refused submit) is the first one the page shows.
        shown = [field.name for _, fields in self.question_fields() for field in fields]
        self.order_fields(["stack_name", "environment", *shown])

    def answers(self) -> dict[str, Any]:
        return {q.variable: self.cleaned_data.get(q.variable) for q in self.questions}

    def question_fields(self) -> list[tuple[str, list]]:
        """(group, bound fields) in the order of each group's first question."""
        groups: dict[str, list] = {}
        for question in self.questions:
            groups.setdefault(question.group, []).append(self[question.variable])
        return list(groups.items())


class PublishForm(forms.Form):
    """An uploaded compose file (or pasted text) plus the template's metadata."""

    slug = forms.CharField(max_length=40, help_text="Names the template in URLs: my-app.")
    name = forms.CharField(max_length=80)
    category = forms.ChoiceField(choices=list(CATEGORIES.items()))
    description = forms.CharField(max_length=300, widget=forms.Textarea(attrs={"rows": 2}))
    icon = forms.CharField(max_length=16, required=False, help_text="One emoji.")
    maintainer = forms.CharField(max_length=120)
    tags = forms.CharField(required=False, help_text="Comma-separated: web, api.")
    version = forms.CharField(max_length=40, initial="1.0.0")
    compose_file = forms.FileField(required=False, label="Compose file (upload)")
    compose = forms.CharField(
        required=False,
        label="…or paste docker-compose.yml",
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono", "spellcheck": "false"}),
    )
    berth = forms.CharField(
        required=False,
        label="berth.yml (questions; optional)",
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "spellcheck": "false"}),
    )
    readme = forms.CharField(
        required=False, label="README (Markdown)", widget=forms.Textarea(attrs={"rows": 4})
    )
    visibility = forms.ChoiceField(
        choices=[("tenant", "Private to my tenant"), ("public", "Public (after an admin approves)")]
    )

    def compose_text(self) -> str:
        upload = self.cleaned_data.get("compose_file")
        if upload:
            return upload.read(256 * 1024 + 1).decode("utf-8", errors="replace")
        return self.cleaned_data.get("compose") or ""

    def metadata(self) -> dict[str, Any]:
        keys = ("slug", "name", "category", "description", "icon", "maintainer", "tags")
        return {k: self.cleaned_data.get(k) for k in keys}
