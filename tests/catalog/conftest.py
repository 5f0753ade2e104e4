"""Catalog test helpers: a writable copy of a small template folder."""

from __future__ import annotations

from pathlib import Path

import pytest

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
    '<rect width="10" height="10"/></svg>'
)
TEMPLATE_YML = """name: Tiny
category: demo
description: A tiny test template.
icon: icon.svg
maintainer: Tests
tags: [test]
"""
COMPOSE = """services:
  web:
    image: berth-demo/web:1.0
    environment:
      GREETING: ${GREETING:-hi}
      PASSWORD: ${PASSWORD}
    ports: ["8080"]
"""
BERTH = """questions:
  - {variable: GREETING, label: Greeting, type: string, default: hi}
  - {variable: PASSWORD, label: Password, type: password}
"""


def write_template(root: Path, slug: str = "tiny", version: str = "1.0.0", **files: str) -> Path:
    folder = root / slug
    (folder / version).mkdir(parents=True, exist_ok=True)
    (folder / "template.yml").write_text(files.get("template", TEMPLATE_YML))
    (folder / "README.md").write_text(files.get("readme", "# Tiny\n"))
    (folder / "icon.svg").write_text(ICON)
    (folder / version / "docker-compose.yml").write_text(files.get("compose", COMPOSE))
    (folder / version / "berth.yml").write_text(files.get("berth", BERTH))
    return folder


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    write_template(tmp_path)
    return tmp_path
