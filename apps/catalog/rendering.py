"""README rendering: Markdown with raw HTML escaped and only safe link targets.

READMEs come from tenants too, and the template page shows them to everyone who may
see the template: a README must not be able to run a script in a reader's session.
"""

from __future__ import annotations

import re

import markdown
from django.utils.safestring import SafeString, mark_safe
from markdown.treeprocessors import Treeprocessor

SAFE_URL = re.compile(r"^(https?://|mailto:|#|/(?!/)|\.{0,2}/?[\w.-]+(/|$|#|\?))", re.IGNORECASE)


class _SafeLinks(Treeprocessor):
    """Drops href/src values with other schemes (javascript:, data:, vbscript: ...)."""

    def run(self, root) -> None:
        for element in root.iter():
            for attribute in ("href", "src"):
                value = element.get(attribute)
                if value is not None and not SAFE_URL.match(value.strip()):
                    element.set(attribute, "#")
            if element.tag == "a":
                element.set("rel", "nofollow noopener")


def render_readme(text: str) -> SafeString:
    md = markdown.Markdown(extensions=["tables", "fenced_code"], output_format="html")
    md.preprocessors.deregister("html_block")  # raw HTML blocks become escaped text
    md.inlinePatterns.deregister("html")  # and so do inline tags
    md.treeprocessors.register(_SafeLinks(md), "berth_safe_links", 0)
    return mark_safe(md.convert(text or ""))  # noqa: S308 -- raw HTML escaped above
