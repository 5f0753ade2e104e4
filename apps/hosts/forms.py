"""The host form: labels are typed as key=value lines; the service validates the rest."""

from django import forms
from django.core.exceptions import ValidationError

from apps.hosts.models import Host

PEM_ATTRS = {"rows": 4, "spellcheck": "false", "class": "mono"}


def parse_labels(text: str) -> dict[str, str]:
    """Turn `key=value` lines into a dict; blank lines and `#` comments are skipped."""
    labels: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"Line {number}: write labels as key=value.")
        labels[key.strip()] = value.strip()
    return labels


def format_labels(labels: dict) -> str:
    return "\n".join(f"{key}={value}" for key, value in sorted((labels or {}).items()))


class HostForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "engine-2"})
    )
    endpoint = forms.CharField(
        max_length=255,
        help_text="unix:///var/run/docker.sock or tcp://host:2376 (TLS below).",
        widget=forms.TextInput(attrs={"placeholder": "tcp://10.0.0.5:2376", "class": "mono"}),
    )
    tls_ca_cert = forms.CharField(
        required=False, label="CA certificate (PEM)", widget=forms.Textarea(attrs=PEM_ATTRS)
    )
    tls_client_cert = forms.CharField(
        required=False, label="Client certificate (PEM)", widget=forms.Textarea(attrs=PEM_ATTRS)
    )
    tls_client_key = forms.CharField(
        required=False, label="Client key (PEM)", widget=forms.Textarea(attrs=PEM_ATTRS)
    )
    labels = forms.CharField(
        required=False,
        help_text="One key=value per line, e.g. zone=eu-west.",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "placeholder": "zone=eu-west"}),
    )

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data.get("labels") or "")


class HostCreateForm(HostForm):
    """Adding a host also says what it is: one engine, or a Swarm cluster through one
    of its managers (the kind is fixed once added)."""

    kind = forms.ChoiceField(
        choices=Host.Kind.choices,
        initial=Host.Kind.ENGINE,
        required=False,
        help_text="A Swarm cluster is registered by one manager's engine endpoint.",
    )

    field_order = ["name", "kind", "endpoint"]

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or Host.Kind.ENGINE


class NodeEngineForm(forms.Form):
    """A Swarm node's own engine endpoint (platform admins, on the host page); the
    service checks it as a host's endpoint, then asks the engine whether it is that node."""

    endpoint = forms.CharField(
        max_length=255,
        required=False,
        label="Engine endpoint",
        help_text="The node's own engine: unix:///path/to/docker.sock or tcp://host:2376 "
        "(TLS below). Leave empty to remove it.",
        widget=forms.TextInput(attrs={"placeholder": "tcp://10.0.0.7:2376", "class": "mono"}),
    )
    tls_ca_cert = forms.CharField(
        required=False, label="CA certificate (PEM)", widget=forms.Textarea(attrs=PEM_ATTRS)
    )
    tls_client_cert = forms.CharField(
        required=False, label="Client certificate (PEM)", widget=forms.Textarea(attrs=PEM_ATTRS)
    )
    tls_client_key = forms.CharField(
        required=False, label="Client key (PEM)", widget=forms.Textarea(attrs=PEM_ATTRS)
    )
