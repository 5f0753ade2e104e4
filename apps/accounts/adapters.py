"""django-allauth hooks: operators can close sign-up; directory users skip e-mail checks."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.stages import EmailVerificationStage
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.http import Http404, HttpRequest

EMAIL_STAGE = "allauth.account.stages.EmailVerificationStage"


class DirectoryAwareEmailVerificationStage(EmailVerificationStage):
    """Mandatory e-mail verification, except for people the LDAP directory vouched for.

    The directory is run by the operator, so its accounts need no mail round-trip (and
    many directories hold no mail attribute at all, which would lock them out).
    """

    def handle(self):
        if getattr(self.login.user, "ldap_user", None) is not None:
            return None, True
        return super().handle()


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """BERTH_ALLOW_SIGNUP=false closes local and OAuth sign-up; existing users log in."""
        return bool(getattr(settings, "BERTH_ALLOW_SIGNUP", True))

    def get_login_stages(self) -> list[str]:
        stages = super().get_login_stages()
        path = f"{__name__}.{DirectoryAwareEmailVerificationStage.__name__}"
        return [path if stage == EMAIL_STAGE else stage for stage in stages]


class ProviderNotConfigured(Http404, SocialApp.DoesNotExist):
    """Http404 for Django, and still the DoesNotExist that allauth's own views catch."""


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def get_app(self, request: HttpRequest, provider, client_id=None):
        """A provider that is not switched on answers 404, not a 500 from DoesNotExist."""
        try:
            return super().get_app(request, provider, client_id=client_id)
        except SocialApp.DoesNotExist:
            raise ProviderNotConfigured(f"The {provider} sign-in is not configured.") from None
