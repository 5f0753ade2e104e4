"""Forms of the stack pages: they shape input; apps.deployments.services decides."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.catalog.questions import SECRET_TYPES
from apps.deployments.models import Route, Service
from apps.deployments.services import MAX_REPLICAS


class ComposeDeployForm(forms.Form):
    name = forms.CharField(
        max_length=63,
        help_text="Lowercase letters, digits and hyphens; unique in the environment.",
        widget=forms.TextInput(attrs={"placeholder": "shop", "autocomplete": "off"}),
    )
    compose = forms.CharField(
        label="Compose file",
        strip=False,
        help_text="A docker-compose.yml. Published ports bind to the environment's interface.",
        widget=forms.Textarea(attrs={"rows": 18, "class": "mono", "spellcheck": "false"}),
    )


class ScaleForm(forms.Form):
    replicas = forms.IntegerField(min_value=0, max_value=MAX_REPLICAS)


class RemoveForm(forms.Form):
    volumes = forms.BooleanField(
        required=False,
        label="Also delete the stack's volumes (their data is lost)",
    )


def question_field(question: Any) -> forms.Field:
    """A form field for one catalog question (a dict or a catalog Question)."""
    get = question.get if isinstance(question, dict) else lambda k, d=None: getattr(question, k, d)
    kind = get("type", "string")
    common = {
        "label": get("label") or get("variable"),
        "help_text": get("description") or "",
        "required": bool(get("required")) and kind not in ("password", "bool"),
        "initial": get("default"),
    }
    if kind == "bool":
        return forms.BooleanField(**{**common, "required": False})
    if kind == "enum":
        return forms.ChoiceField(choices=[(o, o) for o in get("options") or ()], **common)
    if kind == "multiline":
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), **common)
    if kind in SECRET_TYPES:
        return forms.CharField(widget=forms.PasswordInput(render_value=False), **common)
    return forms.CharField(**common)


class UpgradeForm(forms.Form):
    """Choose a newer version; only the questions it adds are asked."""

    version = forms.ChoiceField(
        label="Version",
        help_text="Changing the version reloads the page with that version's new questions.",
        widget=forms.Select(
            attrs={"onchange": "location.search = '?version=' + encodeURIComponent(this.value)"}
        ),
    )

    def __init__(self, *args, targets=(), questions=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(v.version, v.version) for v in targets]
        self.question_names = []
        for question in questions:
            name = question["variable"] if isinstance(question, dict) else question.variable
            self.fields[name] = question_field(question)
            if isinstance(self.fields[name].widget, forms.PasswordInput):
                # Typed in this form: comes back for the preview's Upgrade button.
                self.fields[name].widget.render_value = self.is_bound and name in self.data
            self.question_names.append(name)

    def answers(self) -> dict[str, Any]:
        """The answers given, as text (what the catalog's validation expects)."""
        result = {}
        for name in self.question_names:
            value = self.cleaned_data.get(name)
            if isinstance(value, bool):
                value = "true" if value else "false"
            if value not in (None, ""):
                result[name] = str(value)
        return result


class SaveAsTemplateForm(forms.Form):
    """Publish the stack's compose file and questions (its answers as defaults)."""

    slug = forms.CharField(max_length=40, help_text="Names the template in URLs: my-app.")
    name = forms.CharField(max_length=80, required=False, help_text="Default: the stack's name.")
    version = forms.CharField(max_length=40, initial="1.0.0")
    visibility = forms.ChoiceField(
        choices=[("tenant", "Private to my tenant"), ("public", "Public (after an admin approves)")]
    )
    description = forms.CharField(
        max_length=300, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class RouteForm(forms.Form):
    """A user route on the stack page: which service, host name, path, port, balancing,
    HTTPS.

    Only shapes input; apps.deployments.routes checks the host name, the claim, the path
    and the port, and its messages land on these fields.
    """

    service = forms.ModelChoiceField(queryset=Service.objects.none(), empty_label=None)
    hostname = forms.CharField(
        label="Host name",
        max_length=253,
        widget=forms.TextInput(attrs={"placeholder": "shop.localhost", "autocomplete": "off"}),
    )
    path = forms.CharField(label="Path prefix", max_length=200, initial="/", required=False)
    port = forms.IntegerField(label="Container port", min_value=1, max_value=65535)
    balance = forms.ChoiceField(
        choices=Route.Balance.choices, initial=Route.Balance.ROUND_ROBIN, required=False
    )
    sticky = forms.BooleanField(label="Sticky sessions", required=False)
    tls = forms.ChoiceField(
        label="HTTPS",
        choices=Route.Tls.choices,
        initial=Route.Tls.NONE,
        required=False,
        help_text="Uploaded: upload the host name's certificate first (API, certificates).",
    )
    redirect_https = forms.BooleanField(label="Redirect HTTP to HTTPS", required=False)

    def __init__(self, *args: Any, stack: Any, services: list | None = None, **kwargs: Any) -> None:
        """`services`: the stack's services in name order when the caller has them: the
        select offers those instead of reading them again (twice: once per rendering of
        the choices); what is posted is still checked against the stack's services."""
        super().__init__(*args, **kwargs)
        field = self.fields["service"]
        field.queryset = stack.services.order_by("name")
        field.label_from_instance = lambda service: service.name
        if services is not None:
            field.choices = [(service.pk, service.name) for service in services]


class CanaryWeightForm(forms.Form):
    weight = forms.IntegerField(label="Canary weight (%)", min_value=1, max_value=99)
