"""Loading the built-in catalog (catalog/<slug>/...) into Template and TemplateVersion rows.

Idempotent: run on every start (berth_bootstrap) and by `manage.py loadcatalog`. A
template whose template-level files are wrong is skipped whole; a wrong version is
skipped and the others load; a version already published whose files changed is
refused ("publish a new version instead"), so a deployed stack can always be traced to
the exact content it came from. Every problem is one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from apps.catalog import semver
from apps.catalog.models import Template, TemplateVersion
from apps.catalog.questions import BerthConfigError, VersionConfig, parse_berth_yml
from apps.catalog.services import content_hash, refuse_changed
from apps.catalog.validation import (
    MAX_FILE_BYTES,
    SLUG_RE,
    VERSION_RE,
    check_template_meta,
    check_version_files,
    icon_data_url,
    is_emoji,
)
from apps.compose import ComposeError
from apps.compose.yaml_safe import safe_load

VERSION_FILES = {"docker-compose.yml", "berth.yml"}


@dataclass
class LoadReport:
    """What one run did: counts and one line per problem."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class _Folder:
    slug: str
    meta: dict
    readme: str
    versions: dict[str, tuple[str, str]]  # version -> (compose, berth.yml)


def _read(path: Path, rel: str, problems: list[str]) -> str | None:
    if path.stat().st_size > MAX_FILE_BYTES:
        problems.append(f"{rel}: larger than 256 KiB")
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(f"{rel}: not UTF-8 text")
        return None


def _template_files(folder: Path, slug: str, problems: list[str]) -> _Folder | None:
    """template.yml, README.md and the icon; None when the template must be skipped."""
    if not SLUG_RE.match(slug) or len(slug) > 50:
        problems.append(f"{slug}: the folder name is not a valid slug")
        return None
    text, readme = (
        _required_file(folder, slug, n, problems) for n in ("template.yml", "README.md")
    )
    if text is None or readme is None:
        return None
    try:
        data = safe_load(text)
    except ComposeError as exc:
        problems.extend(f"{slug}/template.yml: {m}" for m in exc.messages)
        return None
    meta, meta_problems = check_template_meta(data, f"{slug}/template.yml")
    problems.extend(meta_problems)
    icon = meta.get("icon")
    if isinstance(icon, str) and not is_emoji(icon):
        meta["icon"] = _icon(folder, slug, icon, problems)
    elif not meta_problems and not is_emoji(icon):
        problems.append(f"{slug}/template.yml: icon: an .svg/.png file name or one emoji")
    if meta_problems or meta.get("icon") is None:
        return None
    return _Folder(slug, meta, readme, {})


def _required_file(folder: Path, slug: str, name: str, problems: list[str]) -> str | None:
    if not (folder / name).is_file():
        problems.append(f"{slug}: {name} is missing")
        return None
    return _read(folder / name, f"{slug}/{name}", problems)


def _icon(folder: Path, slug: str, name: str, problems: list[str]) -> str | None:
    path = folder / name
    if "/" in name or not path.is_file():
        problems.append(f"{slug}/template.yml: icon: no file {name!r} in the template folder")
        return None
    url, problem = icon_data_url(name, path.read_bytes())
    if problem:
        problems.append(f"{slug}/{name}: {problem}")
        return None
    return url


def _layout(folder: Path, slug: str, icon_name: str, problems: list[str]) -> list[Path]:
    """The version folders; any unexpected file is a problem (nothing escapes the hash)."""
    versions = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and VERSION_RE.match(entry.name):
            versions.append(entry)
        elif entry.name not in ("template.yml", "README.md", icon_name):
            problems.append(
                f"{slug}: unexpected {'folder' if entry.is_dir() else 'file'} '{entry.name}'"
            )
    if not versions:
        problems.append(f"{slug}: a template needs at least one version folder")
    return versions


def _version_files(path: Path, rel: str, problems: list[str]) -> tuple[str, str] | None:
    names = {p.name for p in path.iterdir()}
    before = len(problems)
    for name in sorted(names - VERSION_FILES):
        problems.append(f"{rel}: unexpected file '{name}'")
    for name in sorted(VERSION_FILES - names):
        problems.append(f"{rel}: {name} is missing")
    if len(problems) > before:
        return None
    compose = _read(path / "docker-compose.yml", f"{rel}/docker-compose.yml", problems)
    berth = _read(path / "berth.yml", f"{rel}/berth.yml", problems)
    return (compose, berth) if compose is not None and berth is not None else None


def read_template(folder: Path, problems: list[str]) -> _Folder | None:
    """One template folder, read and checked at the template level."""
    slug = folder.name
    before = len(problems)
    found = _template_files(folder, slug, problems)
    icon_name = ""
    if (folder / "template.yml").is_file():
        try:
            icon_name = str(
                (safe_load((folder / "template.yml").read_text()) or {}).get("icon", "")
            )
        except (ComposeError, AttributeError, UnicodeDecodeError):
            icon_name = ""
    version_dirs = _layout(folder, slug, icon_name, problems)
    if found is None or len(problems) > before:
        return None
    for path in version_dirs:
        files = _version_files(path, f"{slug}/{path.name}", problems)
        if files is not None:
            found.versions[path.name] = files
    return found


def _sibling_configs(found: _Folder) -> dict[str, VersionConfig]:
    configs = {}
    for version, (_, berth) in found.versions.items():
        try:
            configs[version] = parse_berth_yml(berth, version=version)
        except BerthConfigError:
            configs[version] = VersionConfig(version=version)
    return configs


@transaction.atomic
def _store(found: _Folder, report: LoadReport) -> None:
    template, _ = Template.objects.get_or_create(
        publisher=None, slug=found.slug, defaults={"name": found.meta["name"]}
    )
    for key, value in found.meta.items():
        setattr(template, key, value)
    template.readme = found.readme
    template.visibility = Template.Visibility.PUBLIC
    template.approval = Template.Approval.APPROVED
    template.save()
    report.templates.append(found.slug)
    siblings = _sibling_configs(found)
    ordered = sorted(found.versions, key=semver.parse_version)
    for version in ordered:
        _store_version(template, found, version, siblings, report)


def _store_version(template, found, version, siblings, report: LoadReport) -> None:
    compose, berth = found.versions[version]
    rel = f"{found.slug}/{version}"
    checked = check_version_files(
        compose, berth, version=version, source=f"{rel}/", siblings=siblings
    )
    if checked.errors:
        report.problems.extend(line for lines in checked.errors.values() for line in lines)
        return
    digest = content_hash(compose, berth)
    existing = template.versions.filter(version=version).first()
    if existing is not None:
        problem = refuse_changed(existing, digest, compose, rel)
        if problem:
            report.problems.append(problem)
        else:
            report.unchanged.append(rel)
        return
    TemplateVersion.objects.create(
        template=template,
        version=version,
        compose=compose,
        config=checked.config.to_dict(),
        questions=[q.to_dict() for q in checked.config.questions],
        readme=found.readme,
        content_hash=digest,
    )
    report.created.append(rel)


def load_catalog(path: str | Path) -> LoadReport:
    """Load every template folder under `path`; problems are reported, never raised."""
    root = Path(path)
    report = LoadReport()
    if not root.is_dir():
        report.problems.append(f"{root}: no such catalog folder")
        return report
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        found = read_template(folder, report.problems)
        if found is not None:
            _store(found, report)
    return report
