"""Forms of the stack's Edit page: its answers (built like the catalog's deploy form) or
its compose file. They only shape input; services.preview_redeploy and redeploy decide,
and their messages land on these fields."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.catalog.forms import question_field
from apps.catalog.questions import config_of

STRATEGY_CHOICES = [
    ("", "As the stack says (berth.yml, else rolling)"),
    ("rolling", "Rolling: replace containers one by one"),
    ("canary", "Canary: new containers get a share of the traffic first"),
]
KEEP_SECRET = "Leave empty to keep the current one."


class EditForm(forms.Form):
    """Common to both editors: the optional rollout strategy (only when it can act)."""

    def __init__(self, *args: Any, strategies: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if strategies:
            self.fields["strategy"] = forms.ChoiceField(
                label="Roll out", choices=STRATEGY_CHOICES, required=False
            )

    def chosen_strategy(self) -> str | None:
        return self.cleaned_data.get("strategy") or None

    def change(self) -> dict[str, Any]:
        """The keyword arguments of services.redeploy / preview_redeploy."""
        raise NotImplementedError


class AnswersForm(EditForm):
    """The template's questions, prefilled with the stack's answers; secret questions
    are left blank (blank keeps the stored value, which never reaches the page)."""

    def __init__(self, *args: Any, version: Any, answers: dict, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.questions = config_of(version).questions
        typed = set(self.data) if self.is_bound else set()
        for question in self.questions:
            field = question_field(question)
            if question.is_secret:
                field.help_text = " ".join(filter(None, [question.description, KEEP_SECRET]))
                field.widget.attrs["placeholder"] = "Unchanged"
                # What the person typed in this very form may come back (to preview, then
                # apply it); a stored secret never does.
                field.widget.render_value = question.variable in typed
            elif question.variable in answers:
                field.initial = answers[question.variable]
            self.fields[question.variable] = field

    def answers(self) -> dict[str, Any]:
        return {
            q.variable: self.cleaned_data.get(q.variable)
            for q in self.questions
            if not (q.is_secret and not self.cleaned_data.get(q.variable))
        }

    def change(self) -> dict[str, Any]:
        return {"answers": self.answers()}

    def question_fields(self) -> list[tuple[str, list]]:
        """(group, bound fields) in the order of each group's first question."""
        groups: dict[str, list] = {}
        for question in self.questions:
            groups.setdefault(question.group, []).append(self[question.variable])
        return list(groups.items())


class ComposeEditForm(EditForm):
    """The compose file, in full: the stack's services become what it says."""

    compose = forms.CharField(
        label="Compose file",
        strip=False,
        help_text="A docker-compose.yml. Published ports bind to the environment's interface.",
        widget=forms.Textarea(
            attrs={"rows": 22, "class": "mono compose-editor", "spellcheck": "false"}
        ),
    )

    def change(self) -> dict[str, Any]:
        return {"compose": self.cleaned_data["compose"]}


class RevealForm(forms.Form):
    name = forms.CharField(max_length=64)
