"""Forms of the tenant pages: they shape input; the services decide what is allowed."""

from django import forms

from apps.tenants.roles import Role, can_grant


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
