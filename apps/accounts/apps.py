from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import pre_save


def discard_local_password(sender, instance, update_fields=None, **kwargs) -> None:
    """Invariant: a directory-managed user never has a usable local password.

    The allauth pages refuse to set one (apps/accounts/adapters.py); this catches every
    other way to save a password (the admin, `changepassword`, a shell), so a local
    password can never be used to sign in instead of the directory's.
    """
    from apps.accounts.models import is_directory_managed

    if update_fields is not None and "password" not in update_fields:
        return
    if instance.has_usable_password() and is_directory_managed(instance):
        instance.set_unusable_password()


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        pre_save.connect(
            discard_local_password,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="accounts.discard_local_password",
        )
