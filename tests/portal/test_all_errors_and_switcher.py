"""Never surprised: a refused form shows every problem at once and opens on the first;
creating a tenant switches to it; the switcher stays usable with many tenants."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from apps.accounts import services as account_services
from apps.catalog.models import Template
from apps.deployments import services as deploy_services
from apps.deployments.models import Stack
from apps.hosts.models import Host
from apps.tenants import services as tenant_services
from apps.tenants.middleware import SESSION_ENVIRONMENT, SESSION_TENANT
from apps.tenants.models import Membership, Tenant
from apps.traffic import certificates
from tests.conftest import login
from tests.fixtures.catalog import public_template

pytestmark = pytest.mark.django_db

COMPOSE = """services:
  web:
    image: berth-demo/web:1.0
    environment:
      SITE: ${SITE}
      PORT: ${PORT}
      GREETING: ${GREETING:-hi}
"""
BERTH = """questions:
  - {variable: SITE, label: Site title, type: string, required: true}
  - {variable: PORT, label: Port, type: int, min: 1, max: 65535, default: 8080}
  - {variable: GREETING, label: Greeting, type: string, default: hi}
"""
BAD_COMPOSE = "services: {web: {image: x, privileged: true}}"


@pytest.fixture
def site_template(db) -> Template:
    return public_template("site", "Site", "A site", COMPOSE, BERTH)


def in_context(user, tenant) -> Client:
    client = login(Client(), user)
    session = client.session
    session[SESSION_TENANT] = tenant.pk
    session[SESSION_ENVIRONMENT] = tenant.environments.get(slug="dev").pk
    session.save()
    return client


def field_errors(response) -> dict[str, list[str]]:
    form = response.context["form"]
    return {key: list(value) for key, value in form.errors.items()}


def summary_links(body: str) -> list[str]:
    """The field ids the error summary links to, in order."""
    block = re.search(r"<div[^>]*data-error-summary.*?</ul>", body, re.S)
    assert block, "no error summary"
    return re.findall(r'data-error-link="([^"]+)"', block.group(0))


# --- every error of a submit at once ----------------------------------------------------------


def test_catalog_deploy_bad_name_and_missing_answer_in_one_response(
    member, tenant_a, site_template
):
    client = in_context(member, tenant_a)
    env = tenant_a.environments.get(slug="dev")
    response = client.post(
        f"/catalog/{site_template.pk}/",
        {"stack_name": "Bad Name", "environment": env.pk, "SITE": "", "PORT": "99999"},
    )
    assert response.status_code == 200
    errors = field_errors(response)
    assert set(errors) >= {"stack_name", "SITE", "PORT"}, errors
    assert errors["SITE"] == ["This answer is required."]
    body = response.content.decode()
    assert summary_links(body)[:3] == ["id_stack_name", "id_SITE", "id_PORT"]
    assert "3 problems to fix" in body
    assert not Stack.objects.exists()


def test_catalog_deploy_empty_name_still_checks_the_answers(member, tenant_a, site_template):
    """The form's own error (a required stack name) does not hide the service's."""
    client = in_context(member, tenant_a)
    env = tenant_a.environments.get(slug="dev")
    response = client.post(
        f"/catalog/{site_template.pk}/", {"stack_name": "", "environment": env.pk, "SITE": ""}
    )
    errors = field_errors(response)
    assert errors["stack_name"] == ["This field is required."]  # the basic one, not twice
    assert errors["SITE"] == ["This answer is required."]


def test_catalog_deploy_taken_name_and_missing_answer(member, tenant_a, site_template):
    env = tenant_a.environments.get(slug="dev")
    deploy_services.create_stack(
        member, env, "blog", template_version=site_template.versions.get(), answers={"SITE": "x"}
    )
    client = in_context(member, tenant_a)
    response = client.post(
        f"/catalog/{site_template.pk}/", {"stack_name": "blog", "environment": env.pk}
    )
    errors = field_errors(response)
    assert "already exists" in errors["stack_name"][0] and "SITE" in errors


def test_compose_deploy_bad_name_and_bad_compose_in_one_response(member, tenant_a):
    client = in_context(member, tenant_a)
    response = client.post(reverse("stacks:create"), {"name": "Bad Name", "compose": BAD_COMPOSE})
    assert response.status_code == 200
    errors = field_errors(response)
    assert "name" in errors and "compose" in errors, errors
    assert "privileged" in " ".join(errors["compose"])
    assert summary_links(response.content.decode()) == ["id_name", "id_compose"]
    assert not Stack.objects.exists()


def test_compose_deploy_empty_name_still_checks_the_compose_file(member, tenant_a):
    client = in_context(member, tenant_a)
    response = client.post(reverse("stacks:create"), {"name": "", "compose": BAD_COMPOSE})
    errors = field_errors(response)
    assert errors["name"] == ["This field is required."]
    assert "privileged" in " ".join(errors["compose"])


def test_create_stack_reports_name_and_render_problems_together(member, tenant_a):
    from django.core.exceptions import ValidationError

    env = tenant_a.environments.get(slug="dev")
    with pytest.raises(ValidationError) as caught:
        deploy_services.create_stack(member, env, "Bad Name", compose=BAD_COMPOSE)
    assert {"name", "compose"} <= set(caught.value.message_dict)


def test_tenant_form_long_name_and_bad_slug_in_one_response(member):
    client = login(Client(), member)
    response = client.post(reverse("tenants:create"), {"slug": "Not A Slug", "name": "x" * 101})
    errors = field_errors(response)
    assert "slug" in errors and "name" in errors, errors
    assert not Tenant.objects.filter(name="x" * 101).exists()


def test_environment_form_taken_slug_with_a_form_error(owner, tenant_a):
    client = login(Client(), owner)
    url = reverse("tenants:environment_create", kwargs={"slug": tenant_a.slug})
    response = client.post(url, {"slug": "dev", "name": "n" * 101})
    errors = field_errors(response)
    assert "already has an environment" in errors["slug"][0] and "name" in errors


def test_host_form_bad_labels_and_taken_name(superuser):
    Host.objects.create(name="engine-1", endpoint="tcp://10.0.0.1:2375")
    client = login(Client(), superuser)
    response = client.post(
        reverse("hosts:create"),
        {"name": "engine-1", "endpoint": "ftp://nowhere", "labels": "no equals sign"},
    )
    errors = field_errors(response)
    assert {"name", "endpoint", "labels"} <= set(errors), errors


def test_token_service_names_every_bad_field():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        account_services.create_token(actor=None, name=" ", expires_days=0)
    assert set(caught.value.message_dict) == {"name", "expires_days"}


def test_certificate_upload_names_host_name_chain_and_key_at_once():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        certificates.check_upload("*.example.com", "", "")
    assert set(caught.value.message_dict) == {"hostname", "chain", "key"}


# --- the summary and the first field in error ----------------------------------------------


def test_summary_links_each_field_and_autofocus_is_on_the_first(member, tenant_a, site_template):
    client = in_context(member, tenant_a)
    env = tenant_a.environments.get(slug="dev")
    body = client.post(
        f"/catalog/{site_template.pk}/", {"stack_name": "Bad Name", "environment": env.pk}
    ).content.decode()
    assert body.count("data-error-summary") == 1
    assert 'href="#id_stack_name"' in body and 'href="#id_SITE"' in body
    name_input = re.search(r"<input[^>]*id=\"id_stack_name\"[^>]*>", body).group(0)
    assert "autofocus" in name_input and 'aria-invalid="true"' in name_input
    assert 'aria-describedby="id_stack_name_helptext id_stack_name_error"' in name_input
    assert 'id="id_stack_name_error"' in body
    site_input = re.search(r"<input[^>]*id=\"id_SITE\"[^>]*>", body).group(0)
    assert "autofocus" not in site_input and 'aria-invalid="true"' in site_input
    assert body.count("autofocus") == 1


def test_no_summary_without_errors(member, tenant_a, site_template):
    body = in_context(member, tenant_a).get(f"/catalog/{site_template.pk}/").content.decode()
    assert "data-error-summary" not in body and "autofocus" not in body


# --- a new tenant becomes the current one --------------------------------------------------


def test_creating_a_tenant_switches_to_it(member, tenant_a):
    client = in_context(member, tenant_a)
    response = client.post(reverse("tenants:create"), {"slug": "rockets", "name": "Rockets"})
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="rockets")
    assert client.session[SESSION_TENANT] == tenant.pk
    assert client.session[SESSION_ENVIRONMENT] == tenant.environments.get(slug="dev").pk
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("now working in it" in m for m in shown), shown
    page = client.get(response["Location"])
    assert page.context["request"].tenant == tenant
    assert page.context["request"].environment.slug == "dev"


# --- the switcher with many tenants --------------------------------------------------------


@pytest.fixture
def sixty_tenants(superuser):
    tenants = [Tenant(slug=f"t{i:02d}", name=f"Tenant number {i:02d}") for i in range(60)]
    Tenant.objects.bulk_create(tenants)
    from apps.tenants.models import Environment

    Environment.objects.bulk_create(
        Environment(tenant=t, slug=s, name=s) for t in Tenant.objects.all() for s in ("dev", "prod")
    )
    return Tenant.objects.order_by("slug")


def test_switcher_with_sixty_tenants_renders_in_bounded_queries(
    superuser, sixty_tenants, django_assert_max_num_queries
):
    client = login(Client(), superuser)
    client.get(reverse("portal:dashboard"))  # session and caches warm
    with django_assert_max_num_queries(20):
        body = client.get(reverse("portal:dashboard")).content.decode()
    assert 'list="switcher-tenants"' in body and body.count('<option value="t') == 60
    assert 'name="tenant_search"' in body and '<select name="tenant"' not in body
    # Few environments: a select; the Switch button is there for a page without JS.
    assert '<select name="environment"' in body and "switcher-go" in body


def test_switcher_query_count_does_not_grow_with_tenants(superuser, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = login(Client(), superuser)
    Tenant.objects.bulk_create(Tenant(slug=f"a{i:02d}", name=f"A {i}") for i in range(10))
    client.get(reverse("portal:dashboard"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("portal:dashboard"))
    Tenant.objects.bulk_create(Tenant(slug=f"b{i:03d}", name=f"B {i}") for i in range(200))
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("portal:dashboard"))
    assert len(many) == len(few)


def test_switcher_search_finds_one_tenant(superuser, sixty_tenants):
    client = login(Client(), superuser)
    wanted = sixty_tenants.get(slug="t42")
    response = client.post(reverse("portal:switch"), {"tenant_search": "number 42", "next": "/"})
    assert response.status_code == 302
    assert client.session[SESSION_TENANT] == wanted.pk
    assert client.session[SESSION_ENVIRONMENT] == wanted.environments.get(slug="dev").pk
    client.post(reverse("portal:switch"), {"tenant_search": "t17", "environment_search": "prod"})
    # another tenant's environment is no choice: t17 opens in its first one
    assert client.session[SESSION_TENANT] == sixty_tenants.get(slug="t17").pk
    client.post(reverse("portal:switch"), {"tenant_search": "t17", "environment_search": "prod"})
    assert (
        client.session[SESSION_ENVIRONMENT]
        == sixty_tenants.get(slug="t17").environments.get(slug="prod").pk
    )


def test_switcher_search_that_is_ambiguous_or_unknown_says_so(superuser, sixty_tenants):
    client = login(Client(), superuser)
    client.post(reverse("portal:switch"), {"tenant_search": "t05"})
    before = client.session[SESSION_TENANT]
    response = client.post(reverse("portal:switch"), {"tenant_search": "number 1"}, follow=True)
    assert client.session[SESSION_TENANT] == before
    assert "several match it" in response.content.decode()
    response = client.post(reverse("portal:switch"), {"tenant_search": "nothing-like"}, follow=True)
    assert "none matches it" in response.content.decode()


def test_switcher_search_never_reaches_a_foreign_tenant(member, tenant_a, tenant_b):
    client = login(Client(), member)
    client.post(reverse("portal:switch"), {"tenant_search": tenant_b.slug})
    assert client.session.get(SESSION_TENANT) != tenant_b.pk
    assert Membership.objects.filter(user=member, tenant=tenant_b).count() == 0


def test_short_lists_stay_selects(member, tenant_a):
    body = in_context(member, tenant_a).get(reverse("portal:dashboard")).content.decode()
    assert '<select name="tenant"' in body and "tenant_search" not in body
    assert "<noscript>" in body


def test_tenant_services_checks_run_without_creating(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        tenant_services.check_new_tenant(slug="Bad Slug")
    tenant_services.check_new_tenant(slug="fine")
    assert not Tenant.objects.filter(slug="fine").exists()


def test_publish_form_missing_description_and_bad_compose_in_one_response(member, tenant_a):
    client = in_context(member, tenant_a)
    data = {
        "slug": "shop",
        "name": "Shop",
        "category": "web",
        "description": "",
        "maintainer": "Acme",
        "version": "1.0.0",
        "compose": BAD_COMPOSE,
        "visibility": "tenant",
    }
    errors = field_errors(client.post(reverse("catalog:publish"), data))
    assert "description" in errors and "compose" in errors, errors


def test_publish_service_names_metadata_and_file_problems_together(member, tenant_a):
    from django.core.exceptions import ValidationError

    from apps.catalog import services as catalog_services

    meta = {"slug": "Bad Slug", "name": "Shop", "category": "web", "description": "d"}
    with pytest.raises(ValidationError) as caught:
        catalog_services.publish_template(
            member, tenant_a, {**meta, "maintainer": "Acme"}, "1.0.0", "services: [", ""
        )
    assert {"template", "compose"} <= set(caught.value.message_dict), caught.value.message_dict


def test_stack_api_names_a_bad_name_and_a_refused_compose_file_together(member, tenant_a):
    from rest_framework.test import APIClient

    _, raw = account_services.create_token(actor=member, name="t")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    env = tenant_a.environments.get(slug="dev")
    body = {"environment": env.pk, "name": "Bad Name", "compose": BAD_COMPOSE}
    response = api.post("/api/v1/stacks/", body, format="json")
    assert response.status_code == 400
    assert {"name", "compose"} <= set(response.json()), response.json()


def test_many_environments_get_a_search_box_too(owner, tenant_a):
    for i in range(10):
        tenant_services.create_environment(actor=owner, tenant=tenant_a, slug=f"qa-{i}")
    client = in_context(owner, tenant_a)
    body = client.get(reverse("portal:dashboard")).content.decode()
    assert 'name="environment_search"' in body and 'list="switcher-environments"' in body
    assert '<select name="tenant"' in body  # one tenant: still a select
    client.post(reverse("portal:switch"), {"tenant": tenant_a.pk, "environment_search": "qa-7"})
    assert client.session[SESSION_ENVIRONMENT] == tenant_a.environments.get(slug="qa-7").pk
    response = client.post(
        reverse("portal:switch"), {"tenant": tenant_a.pk, "environment_search": "qa"}, follow=True
    )
    assert "No environment switched" in response.content.decode()
    assert client.session[SESSION_ENVIRONMENT] == tenant_a.environments.get(slug="qa-7").pk


def test_invitation_form_member_address_and_bad_role_in_one_response(owner, member, tenant_a):
    client = login(Client(), owner)
    url = reverse("tenants:invite", kwargs={"slug": tenant_a.slug})
    response = client.post(url, {"email": member.email, "role": "emperor"})
    errors = field_errors(response)
    assert "role" in errors and "already a member" in errors["email"][0], errors


def test_a_viewers_refused_form_shows_its_errors_not_a_403(viewer, tenant_a):
    client = in_context(viewer, tenant_a)
    response = client.post(reverse("stacks:create"), {"name": "", "compose": BAD_COMPOSE})
    assert response.status_code == 200
    assert field_errors(response)["name"] == ["This field is required."]


def test_quotas_name_every_bad_value(superuser, tenant_a):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        tenant_services.set_quotas(
            actor=superuser, tenant=tenant_a, values={"stacks": 10**12, "cpus": "0.001"}
        )
    assert set(caught.value.message_dict) == {"stacks", "cpus"}


@pytest.mark.parametrize("field", ["tenant", "environment"])
def test_switcher_refuses_digits_that_are_no_number(member, tenant_a, field):
    """ "²" is a digit to str.isdigit() but no number to int(): a 500 before."""
    from django.test import Client
    from django.urls import reverse

    from tests.conftest import login

    client = login(Client(raise_request_exception=False), member)
    data = {"tenant": str(tenant_a.pk), field: "\u00b2"}
    assert client.post(reverse("portal:switch"), data).status_code == 302
