"""File-level checks of the built-in catalog against the format in catalog/README.md.

Pure YAML and file checks, no models: every rule a template author can break in
catalog/<slug>/... is checked here, so a broken built-in template fails CI before any
loader sees it. When apps.compose is present, each Compose file is also run through
Berth's own parser and tenant policy, interpolated with sample answers.
"""

from __future__ import annotations

import json
import secrets
import shutil
import string
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from tests.catalog_data import catalog_rules as rules

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "catalog"

TEMPLATES = sorted(p.name for p in CATALOG.iterdir() if p.is_dir())
VERSIONS = [
    (slug, version.name)
    for slug in TEMPLATES
    for version in sorted((CATALOG / slug).iterdir())
    if version.is_dir()
]
VERSION_IDS = [f"{slug}-{version}" for slug, version in VERSIONS]


@dataclass(frozen=True)
class Version:
    slug: str
    name: str
    compose: dict[str, Any]
    berth: dict[str, Any]

    @property
    def questions(self) -> list[dict[str, Any]]:
        return self.berth.get("questions") or []

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return {q["variable"]: q for q in self.questions}

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.compose["services"]


@cache
def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@cache
def load_version(slug: str, name: str) -> Version:
    folder = CATALOG / slug / name
    return Version(
        slug,
        name,
        load_yaml(folder / "docker-compose.yml"),
        load_yaml(folder / "berth.yml") or {},
    )


def versions_of(slug: str) -> list[str]:
    return sorted((p.name for p in (CATALOG / slug).iterdir() if p.is_dir()), key=rules.semver_key)


# ---------------------------------------------------------------------------------------
# The catalog as a whole
# ---------------------------------------------------------------------------------------


def test_catalog_has_the_built_in_templates():
    assert len(TEMPLATES) >= 13, TEMPLATES
    for slug, version in [
        ("web-page", "1.0.0"),
        ("web-page", "1.1.0"),
        ("guestbook", "1.0.0"),
        ("worker", "1.0.0"),
    ]:
        assert (CATALOG / slug / version / "docker-compose.yml").is_file(), (slug, version)
    assert len(load_version("guestbook", "1.0.0").services) == 3


def test_slugs_are_valid():
    for slug in TEMPLATES:
        assert rules.SLUG.fullmatch(slug), slug


def test_catalog_readme_lists_every_template():
    readme = (CATALOG / "README.md").read_text(encoding="utf-8")
    for slug in TEMPLATES:
        assert f"`{slug}`" in readme, f"catalog/README.md does not list {slug}"
        for version in versions_of(slug):
            row = next(line for line in readme.splitlines() if line.startswith(f"| `{slug}`"))
            assert version in row, f"catalog/README.md: {slug} row lacks version {version}"


def test_demo_images_are_built_by_the_project_and_named_from_the_registry():
    """Every image a template names in Berth's registry (`${BERTH_REGISTRY}/library/...`)
    is a demo image of deploy/build-images.sh's list, which `publishimages` pushes there;
    no template names a local-only `berth-demo/*` build."""
    listed = subprocess.run(
        ["bash", str(REPO / "deploy" / "build-images.sh"), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed, "deploy/build-images.sh --list printed nothing"
    from_registry = 0
    for slug, name in VERSIONS:
        for service, spec in load_version(slug, name).services.items():
            image = spec["image"]
            where = f"{slug} {name} {service}: {image}"
            assert not image.startswith("berth-demo/"), f"{where}: name it from the registry"
            if image.startswith("${BERTH_REGISTRY}/"):
                path = image.removeprefix("${BERTH_REGISTRY}/")
                assert path.startswith("library/"), f"{where}: not a platform image"
                local = "berth-demo/" + path.removeprefix("library/")
                assert local in listed, f"{where}: {local} is not built"
                from_registry += 1
    assert from_registry >= 5, "the demo templates should name their images from the registry"
    for image in listed:
        folder = REPO / "deploy" / "images" / image.split(":")[0].removeprefix("berth-demo/")
        assert (folder / "Dockerfile").is_file(), f"{image}: no {folder}/Dockerfile"


# ---------------------------------------------------------------------------------------
# Template folders: layout, template.yml, README.md, icon
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", TEMPLATES)
def test_template_folder_layout(slug):
    folder = CATALOG / slug
    meta = load_yaml(folder / "template.yml")
    allowed = {"template.yml", "README.md"}
    if isinstance(meta, dict) and rules.is_icon_file(meta.get("icon")):
        allowed.add(meta["icon"])
    problems = []
    for entry in folder.iterdir():
        if entry.is_dir():
            if not rules.SEMVER.fullmatch(entry.name):
                problems.append(f"{entry.name}: not a semantic version")
            files = sorted(p.name for p in entry.iterdir())
            if files != ["berth.yml", "docker-compose.yml"]:
                problems.append(
                    f"{entry.name}: holds {files}, expected berth.yml and docker-compose.yml"
                )
        elif entry.name not in allowed:
            problems.append(f"unexpected file {entry.name!r}")
    for required in ("template.yml", "README.md"):
        if not (folder / required).is_file():
            problems.append(f"missing {required}")
    if not versions_of(slug):
        problems.append("no version folder")
    assert not problems, problems


@pytest.mark.parametrize("slug", TEMPLATES)
def test_template_yml(slug):
    meta = load_yaml(CATALOG / slug / "template.yml")
    assert rules.check_template_meta(meta, CATALOG / slug) == []


@pytest.mark.parametrize("slug", TEMPLATES)
def test_icon_is_a_safe_svg_or_an_emoji(slug):
    icon = load_yaml(CATALOG / slug / "template.yml")["icon"]
    if not rules.is_icon_file(icon):
        assert rules.is_emoji(icon), icon
        return
    path = CATALOG / slug / icon
    assert path.stat().st_size <= 256 * 1024
    if icon.endswith(".png"):
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        return
    text = path.read_text(encoding="utf-8")
    root = ElementTree.fromstring(text)
    assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg")
    assert root.get("viewBox"), "give the icon a viewBox so it scales"
    for element in root.iter():
        assert not element.tag.endswith("script"), "no <script> in icons"
        for attribute, value in element.attrib.items():
            assert not attribute.lower().startswith("on"), f"event attribute {attribute}"
            if attribute.endswith("href"):
                assert value.startswith(("#", "data:")), f"external reference {value}"


@pytest.mark.parametrize("slug", TEMPLATES)
def test_readme_documents_questions_ports_and_volumes(slug):
    readme = (CATALOG / slug / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# "), "start with a title"
    for heading in ("## Questions", "## Ports", "## Volumes", "## How to reach it"):
        assert heading in readme, f"README.md has no '{heading}' section"
    for version in versions_of(slug):
        data = load_version(slug, version)
        for variable in data.variables:
            assert f"`{variable}`" in readme, f"README.md does not document {variable}"
        for volume in data.compose.get("volumes") or {}:
            assert f"`{volume}`" in readme, f"README.md does not document volume {volume}"


# ---------------------------------------------------------------------------------------
# Versions: berth.yml, questions, interpolation, compose conventions, upgrades
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_compose_file_parses(slug, name):
    data = load_version(slug, name)
    assert isinstance(data.compose, dict)
    assert set(data.compose) <= {"services", "volumes", "networks"}, set(data.compose)
    assert isinstance(data.services, dict) and data.services
    for service, spec in data.services.items():
        assert rules.DNS_LABEL.fullmatch(service), service
        assert isinstance(spec, dict) and "image" in spec, service
        assert "build" not in spec and "container_name" not in spec, service


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_berth_yml_is_well_formed(slug, name):
    data = load_version(slug, name)
    assert rules.check_berth_yml(data.berth, data.compose) == []


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_questions_are_well_formed(slug, name):
    data = load_version(slug, name)
    assert rules.check_questions(data.questions) == []


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_every_variable_is_a_question_or_has_a_default(slug, name):
    data = load_version(slug, name)
    assert rules.check_variable_usage(data.compose, data.berth) == []


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_compose_has_no_forbidden_keys(slug, name):
    data = load_version(slug, name)
    assert rules.forbidden_usage(data.compose) == []


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_compose_follows_built_in_conventions(slug, name):
    data = load_version(slug, name)
    assert rules.convention_problems(data.compose, data.berth) == []


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_upgrade_from_and_migrations(slug, name):
    data = load_version(slug, name)
    older = {
        other: load_version(slug, other).variables
        for other in versions_of(slug)
        if rules.semver_key(other) < rules.semver_key(name)
    }
    migrations = {
        other: load_version(slug, other).berth.get("migrations") or []
        for other in versions_of(slug)
    }
    problems = rules.check_upgrades(name, data.berth, data.variables, older, migrations)
    assert problems == []


def test_the_demo_web_page_has_an_upgrade_with_a_migration():
    newer = load_version("web-page", "1.1.0").berth
    assert newer["upgrade_from"] == ["1.0.0"]
    assert {"rename": {"from": "MESSAGE", "to": "GREETING"}} in newer["migrations"]


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_sample_answers_are_valid(slug, name):
    """The defaults (and generated passwords) satisfy their own questions."""
    data = load_version(slug, name)
    answers = sample_answers(data.questions)
    for question in data.questions:
        if question["variable"] in answers:
            assert rules.answer_errors(question, answers[question["variable"]]) == [], question


# ---------------------------------------------------------------------------------------
# Rendering: Berth's own Compose parser and policy, and docker-compose
# ---------------------------------------------------------------------------------------


def sample_answers(questions: list[dict[str, Any]]) -> dict[str, Any]:
    """What a user accepting every default would submit, hidden questions left out."""
    answers: dict[str, Any] = {}
    for question in questions:
        if not rules.is_shown(question, answers):
            continue
        answers[question["variable"]] = sample_value(question)
    return answers


def sample_value(question: dict[str, Any]) -> Any:
    if "default" in question:
        return question["default"]
    kind, low = question["type"], question.get("min")
    if kind == "password":
        alphabet = string.ascii_letters + string.digits
        size = max(32, low or 0)
        size = min(size, question.get("max", size))
        return "".join(secrets.choice(alphabet) for _ in range(size))
    samples = {
        "secret": "sample-secret-value-0123456789",
        "hostname": "app.example.com",
        "string": "sample",
        "multiline": "line one\nline two",
        "int": low if low is not None else 1,
        "bool": False,
    }
    if kind == "enum":
        return question["options"][0]
    return samples[kind]


def rendered_environment(questions: list[dict[str, Any]]) -> dict[str, str]:
    env = {k: rules.as_text(v) for k, v in sample_answers(questions).items()}
    env.update(
        BERTH_STACK_NAME="sample",
        BERTH_ENVIRONMENT="dev",
        BERTH_TENANT="acme",
        BERTH_REGISTRY="127.0.0.1:5000",
    )
    return env


@pytest.mark.parametrize(("slug", "name"), VERSIONS, ids=VERSION_IDS)
def test_compose_passes_berths_parser_and_policy(slug, name):
    compose = pytest.importorskip("apps.compose")
    policy = pytest.importorskip("apps.compose.policy")
    data = load_version(slug, name)
    text = (CATALOG / slug / name / "docker-compose.yml").read_text(encoding="utf-8")
    missing: set[str] = set()
    try:
        project = compose.load_compose(text, rendered_environment(data.questions), missing=missing)
    except compose.ComposeError as exc:
        pytest.fail(f"{slug} {name}: {exc}")
    hidden = {q["variable"] for q in data.questions if "show_if" in q}
    assert missing <= hidden, f"variables without a value: {sorted(missing - hidden)}"
    project = policy.normalize_ports(project, "127.0.0.1")
    assert policy.check_policy(project) == []


def compose_v1_python() -> str | None:
    """The interpreter of Debian's docker-compose 1.x script, if that is what is installed."""
    path = shutil.which("docker-compose")
    if path is None:
        return None
    with open(path, "rb") as handle:
        first = handle.readline().decode(errors="replace")
    return first[2:].strip() if first.startswith("#!") and "python" in first else None


@pytest.mark.skipif(compose_v1_python() is None, reason="docker-compose 1.x not installed")
def test_docker_compose_accepts_every_rendered_file():
    """The same files work with plain docker-compose (the benchmark compares the two)."""
    items = [
        {
            "label": f"{slug} {name}",
            "path": str(CATALOG / slug / name / "docker-compose.yml"),
            "env": rendered_environment(load_version(slug, name).questions),
        }
        for slug, name in VERSIONS
    ]
    result = subprocess.run(
        [compose_v1_python(), str(Path(__file__).with_name("compose_v1_check.py"))],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}
