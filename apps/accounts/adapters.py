"""django-allauth hooks: operators can close sign-up (an invitation reopens it for the
invited address); directory users skip e-mail checks and never get a local password."""

from __future__ import annotations

import logging
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.stages import EmailVerificationStage
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest

from apps.accounts.ldap import DirectoryUnavailableError, directory_owns
from apps.accounts.models import DIRECTORY_PASSWORD_MESSAGE, is_directory_managed
from apps.tenants import services as tenant_services

logger = logging.getLogger(__name__)

EMAIL_STAGE = "allauth.account.stages.EmailVerificationStage"
LDAP_BACKEND = "apps.accounts.ldap.BerthLDAPBackend"
SIGNUP_URL_NAMES = frozenset({"account_signup", "socialaccount_signup"})
# Forms that look an existing account up by its address (and must answer alike for every
# address); everywhere else clean_email is about claiming an address.
LOOKUP_URL_NAMES = frozenset({"account_reset_password", "account_request_login_code"})
INVITED_ADDRESS_MESSAGE = (
    "Sign-up is by invitation only: use the e-mail address your invitation was sent to."
)
DIRECTORY_NAME_MESSAGE = (
    "This user name belongs to your organisation's directory. If it is yours, sign in "
    "with your directory password instead; otherwise choose another name."
)
DIRECTORY_EMAIL_MESSAGE = (
    "This address belongs to your organisation's directory. If it is yours, sign in "
    "with your directory user name and password instead."
)
DIRECTORY_DOWN_MESSAGE = (
    "Your organisation's directory cannot be reached to check this; try again in a few minutes."
)


def check_not_in_directory(*, username: str = "", email: str = "") -> None:
    """Refuse a sign-up that would take a name or address the LDAP directory owns.

    Otherwise whoever signs up first holds the account the directory person would
    later be refused (or, worse, handed). A directory that cannot be asked refuses too.
    """
    try:
        owned = directory_owns(username=username, email=email)
    except DirectoryUnavailableError:
        raise ValidationError(DIRECTORY_DOWN_MESSAGE, code="directory_unavailable") from None
    if owned:
        message = DIRECTORY_NAME_MESSAGE if username else DIRECTORY_EMAIL_MESSAGE
        raise ValidationError(message, code="directory_owned")


def signup_allowed() -> bool:
    """BERTH_ALLOW_SIGNUP=false closes local and OAuth sign-up; existing users log in."""
    return settings.BERTH_ALLOW_SIGNUP


def invitation_of(request: HttpRequest | None):
    """The pending invitation remembered in this visitor's session, if any."""
    session = getattr(request, "session", None)
    return None if session is None else tenant_services.remembered_invitation(session)


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
        """Open when the operator allows sign-up, or for someone holding a pending invitation.

        Opening the invitation link while signed out remembers the invitation in the
        session (apps/tenants/views.py); an expired, used or revoked one opens nothing.
        """
        if signup_allowed():
            return True
        return invitation_of(request) is not None

    def clean_username(self, username: str, shallow: bool = False) -> str:
        """Local and OAuth sign-up (allauth generates OAuth names through here, shallow)
        never take a login name of the LDAP directory."""
        username = super().clean_username(username, shallow=shallow)
        check_not_in_directory(username=username)
        return username

    def clean_email(self, email: str) -> str:
        """On a sign-up form opened only by an invitation, only the invited address goes;
        an address of the LDAP directory never goes (sign-up, OAuth, added addresses)."""
        email = super().clean_email(email)
        invitation = self._signup_invitation()
        if invitation is not None and email.lower() != invitation.email.lower():
            raise ValidationError(INVITED_ADDRESS_MESSAGE, code="not_invited")
        match = getattr(self.request, "resolver_match", None)
        if match is None or match.url_name not in LOOKUP_URL_NAMES:
            check_not_in_directory(email=email)
        return email

    def _signup_invitation(self):
        """The invitation that opened this sign-up form, or None when sign-up is open."""
        request = self.request
        match = getattr(request, "resolver_match", None)
        if signup_allowed() or match is None or match.url_name not in SIGNUP_URL_NAMES:
            return None
        return invitation_of(request)

    def clean_password(self, password: str, user: Any = None) -> str:
        """Refuse to set, change or reset a local password the directory owns.

        SetPasswordField calls this on the password set, change and reset-by-key forms,
        so each of them answers with this form error instead of saving.
        """
        if user is not None and is_directory_managed(user):
            raise ValidationError(DIRECTORY_PASSWORD_MESSAGE, code="directory_managed")
        return super().clean_password(password, user=user)

    def send_password_reset_mail(self, user: Any, email: str, context: dict) -> None:
        """Directory users get a mail saying where to change their password, never a link.

        The page answers exactly as for any other address (allauth's "mail sent" page,
        also shown for unknown addresses), so it reveals nothing about which accounts
        exist or come from LDAP; only the owner of the mailbox learns that, from the mail.
        """
        if is_directory_managed(user):
            # No reset key in the context at all, so no template can leak one.
            safe = {key: context[key] for key in ("user", "username", "request") if key in context}
            self.send_mail("account/email/password_reset_directory", email, safe)
            return
        super().send_password_reset_mail(user, email, context)

    def authenticate(self, request: HttpRequest, **credentials: Any):
        """A directory-managed user signs in through the directory only, never a local hash."""
        user = super().authenticate(request, **credentials)
        if user is None or getattr(user, "backend", None) == LDAP_BACKEND:
            return user
        if is_directory_managed(user):
            logger.warning("Refused a local-password login for directory user %s", user)
            return None
        return user

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

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin) -> bool:
        """An OAuth address the LDAP directory owns goes through the sign-up form, whose
        e-mail check (AccountAdapter.clean_email) refuses it with a message."""
        if not super().is_auto_signup_allowed(request, sociallogin):
            return False
        emails = [address.email for address in sociallogin.email_addresses]
        try:
            return not any(directory_owns(email=email) for email in emails)
        except DirectoryUnavailableError:
            return False

    def is_open_for_signup(self, request: HttpRequest, sociallogin) -> bool:
        """With sign-up closed, an invitation opens OAuth sign-up only for the invited
        address, and only when the provider vouches for it (a verified address)."""
        if signup_allowed():
            return True
        invitation = invitation_of(request)
        if invitation is None or sociallogin is None:
            return False
        invited = invitation.email.lower()
        return any(
            address.verified and address.email.lower() == invited
            for address in sociallogin.email_addresses
        )
