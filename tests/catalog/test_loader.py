"""The catalog loader: the real catalog/, idempotence, immutability, invalid templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.catalog.loader import load_catalog
from apps.catalog.models import Template, TemplateVersion
from tests.catalog.conftest import BERTH, COMPOSE, write_template

pytestmark = pytest.mark.django_db
REAL = Path(settings.BASE_DIR) / "catalog"


def test_real_catalog_loads_every_template():
    report = load_catalog(REAL)
    assert report.problems == []
    assert len(report.templates) >= 12
    builtins = Template.objects.filter(publisher=None)
    assert builtins.count() >= 12
    assert all(t.visibility == "public" and t.approval == "approved" for t in builtins)
    assert TemplateVersion.objects.filter(template__slug="web-page").count() >= 2
    again = load_catalog(REAL)
    assert again.created == [] and again.problems == []
    assert len(again.unchanged) == TemplateVersion.objects.count()


def test_tiny_template_loads_with_questions_and_hash(catalog_dir):
    report = load_catalog(catalog_dir)
    assert report.problems == [] and report.created == ["tiny/1.0.0"]
    version = TemplateVersion.objects.get(template__slug="tiny")
    assert [q["variable"] for q in version.questions] == ["GREETING", "PASSWORD"]
    assert len(version.content_hash) == 64
    template = version.template
    assert template.icon.startswith("data:image/svg+xml;base64,")
    assert template.readme == "# Tiny\n" and template.category == "demo"


def test_second_run_is_idempotent_and_metadata_may_change(catalog_dir):
    load_catalog(catalog_dir)
    (catalog_dir / "tiny" / "README.md").write_text("# Changed readme\n")
    report = load_catalog(catalog_dir)
    assert report.problems == [] and report.unchanged == ["tiny/1.0.0"]
    assert Template.objects.get(slug="tiny").readme == "# Changed readme\n"
    assert TemplateVersion.objects.count() == 1


def test_changed_version_is_refused_and_the_rest_still_loads(catalog_dir):
    load_catalog(catalog_dir)
    compose = catalog_dir / "tiny" / "1.0.0" / "docker-compose.yml"
    compose.write_text(COMPOSE.replace("1.0", "1.1"))
    write_template(catalog_dir, version="1.1.0")
    report = load_catalog(catalog_dir)
    assert len(report.problems) == 1
    assert "tiny 1.0.0: content changed since publication" in report.problems[0]
    assert "tiny/1.0.0/docker-compose.yml" in report.problems[0]
    assert "publish a new version instead" in report.problems[0]
    assert report.created == ["tiny/1.1.0"]
    stored = TemplateVersion.objects.get(template__slug="tiny", version="1.0.0")
    assert "web:1.0" in stored.compose


@pytest.mark.parametrize(
    "files, expected",
    [
        (
            {"compose": COMPOSE.replace("image:", "privileged: true\n    image:")},
            "tiny/1.0.0/docker-compose.yml: service 'web': privileged",
        ),
        (
            {"compose": COMPOSE.replace('["8080"]', '["0.0.0.0:80:8080"]')},
            "tiny/1.0.0/docker-compose.yml",
        ),
        ({"compose": COMPOSE + "    volumes: ['/var/run/docker.sock:/s']\n"}, "docker.sock"),
        (
            {"compose": COMPOSE + "    deploy: {placement: {constraints: [node.role==manager]}}\n"},
            "docker-compose.yml: services.web.deploy.placement: placement (constraints, "
            "preferences, max_replicas_per_node) needs a Swarm host",
        ),
        (
            {"compose": COMPOSE + "    deploy: {update_config: {failure_action: continue}}\n"},
            "services.web.deploy.update_config.failure_action: continue is not supported",
        ),
        (
            {"compose": COMPOSE.replace("${PASSWORD}", "${TOKEN}")},
            "variable 'TOKEN' is neither a question nor given a default",
        ),
        (
            {"compose": COMPOSE.replace("${GREETING:-hi}", "${GREETING:-hello}")},
            "differs from the question's default",
        ),
        (
            {"berth": BERTH + "  - {variable: UNUSED, label: U, type: string}\n"},
            "questions[2] (UNUSED): variable 'UNUSED' is not used",
        ),
        (
            {"berth": BERTH.replace("type: password", "type: pass")},
            "tiny/1.0.0/berth.yml: questions[1] (PASSWORD): type 'pass'",
        ),
        (
            {"berth": BERTH + "services: {db: {scale: 1}}\n"},
            "services.db: no such service in docker-compose.yml",
        ),
        (
            {"berth": BERTH + "upgrade_from: ['0.9.0']\n"},
            "upgrade_from[0]: version 0.9.0 does not exist",
        ),
        ({"berth": BERTH + "min_berth_version: 99.0.0\n"}, "requires Berth >= 99.0.0"),
    ],
)
def test_invalid_version_is_reported_with_file_and_field_and_not_loaded(tmp_path, files, expected):
    write_template(tmp_path, **files)
    report = load_catalog(tmp_path)
    assert any(expected in line for line in report.problems), report.problems
    assert not TemplateVersion.objects.exists()


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda f: (f / "template.yml").write_text("name: X\n"),
            "tiny/template.yml: category: is required",
        ),
        (
            lambda f: (f / "template.yml").write_text(
                (f / "template.yml").read_text().replace("demo", "games")
            ),
            "'games' is not a category",
        ),
        (lambda f: (f / "notes.txt").write_text("x"), "tiny: unexpected file 'notes.txt'"),
        (lambda f: (f / "README.md").unlink(), "tiny: README.md is missing"),
        (
            lambda f: (f / "icon.svg").write_text(
                '<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>'
            ),
            "may not contain scripts",
        ),
    ],
)
def test_invalid_template_level_files_skip_the_template(catalog_dir, change, expected):
    change(catalog_dir / "tiny")
    report = load_catalog(catalog_dir)
    assert any(expected in line for line in report.problems), report.problems
    assert not Template.objects.exists()


def test_stray_file_in_a_version_skips_only_that_version(catalog_dir):
    write_template(catalog_dir, version="1.1.0")
    (catalog_dir / "tiny" / "1.0.0" / "berth.yaml").write_text("x")
    report = load_catalog(catalog_dir)
    assert report.problems == ["tiny/1.0.0: unexpected file 'berth.yaml'"]
    assert report.created == ["tiny/1.1.0"]


def test_upgrade_that_would_lose_answers_is_refused(tmp_path):
    write_template(tmp_path)
    berth2 = BERTH.replace("GREETING", "HELLO") + "upgrade_from: ['1.0.0']\n"
    write_template(
        tmp_path, version="2.0.0", berth=berth2, compose=COMPOSE.replace("GREETING:-", "HELLO:-")
    )
    report = load_catalog(tmp_path)
    assert any(
        "answers to GREETING (a question of 1.0.0) would be lost" in p for p in report.problems
    )
    fixed = berth2 + "migrations: [{rename: {from: GREETING, to: HELLO}}]\n"
    (tmp_path / "tiny" / "2.0.0" / "berth.yml").write_text(fixed)
    assert load_catalog(tmp_path).problems == []


def test_command_reports_problems_and_exits_nonzero(tmp_path, capsys):
    write_template(tmp_path, compose="services: {web: {image: x, privileged: true}}\n")
    with pytest.raises(CommandError):
        call_command("loadcatalog", str(tmp_path))
    assert "privileged" in capsys.readouterr().err
