"""Forms of the tenant pages: they shape input; the services decide what is allowed."""

from django import forms

from apps.core.roles import Role, can_grant


class TenantCreateForm(forms.Form):
    slug = forms.CharField(
        max_length=40,
        help_text="Lowercase letters, digits and hyphens; used in URLs and image names.",
        widget=forms.TextInput(attrs={"placeholder": "acme", "autocomplete": "off"}),
    )
    name = forms.CharField(max_length=100, required=False, help_text="Defaults to the slug.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class TenantEditForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class EnvironmentCreateForm(forms.Form):
    slug = forms.CharField(
        max_length=40,
        help_text="Lowercase letters, digits and hyphens, e.g. qa or eu-prod.",
        widget=forms.TextInput(attrs={"placeholder": "qa", "autocomplete": "off"}),
    )
    name = forms.CharField(max_length=100, required=False, help_text="Defaults to the slug.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class EnvironmentEditForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


def grantable_roles(actor_role: str | None) -> list[tuple[str, str]]:
    """The role choices to offer someone with `actor_role`; the service re-checks."""
    if actor_role is None:
        return []
    return [(r.value, r.label) for r in Role if can_grant(actor_role, r.value)]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, actor_role: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if actor_role is not None:
            self.fields["role"].choices = grantable_roles(actor_role)


class InvitationForm(forms.Form):
    email = forms.EmailField(
        widget=forms.EmailInput(attrs={"placeholder": "name@example.com", "autocomplete": "off"})
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, actor_role: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if actor_role is not None:
            self.fields["role"].choices = grantable_roles(actor_role)


MiB = 1024 * 1024


class QuotaForm(forms.Form):
    """A tenant's quotas as a platform admin sets them; sizes in MiB (0: unlimited)."""

    stacks = forms.IntegerField(min_value=0, help_text="Stacks, stopped ones included.")
    containers = forms.IntegerField(
        min_value=0, label="Containers", help_text="Every replica of every stack."
    )
    memory = forms.IntegerField(
        min_value=0, label="Memory (MiB)", help_text="The memory limits of all containers."
    )
    cpus = forms.DecimalField(
        min_value=0,
        max_digits=7,
        decimal_places=2,
        label="CPUs",
        help_text="All containers; with a limit, every service must set cpus.",
    )
    pids = forms.IntegerField(
        min_value=0, label="Processes per container", help_text="The most a compose file asks."
    )
    registry_storage = forms.IntegerField(
        min_value=0, label="Registry storage (MiB)", help_text="Images, and blobs being pushed."
    )

    SIZES = ("memory", "registry_storage")

    @classmethod
    def initial_from(cls, lines) -> dict:
        initial = {line.key: line.limit for line in lines}
        for key in cls.SIZES:
            initial[key] = int(initial.get(key, 0)) // MiB
        return initial

    def quota_values(self) -> dict:
        """The cleaned data in the service's units (bytes)."""
        values = dict(self.cleaned_data)
        for key in self.SIZES:
            values[key] = values[key] * MiB
        return values
