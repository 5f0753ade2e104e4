"""Forms of the certificates page: they shape input (pasted PEM or a chosen file); the
checks of what the PEM says live once, in apps.traffic.certificates.parse_bundle, which
the API calls too."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from apps.traffic.certificates import MAX_CHAIN_BYTES, MAX_KEY_BYTES


class UnechoedTextarea(forms.Textarea):
    """A textarea that never sends its value back: a form shown again with errors does
    not put the private key into the page (as a password field would not)."""

    def format_value(self, value: Any) -> None:
        return None


class PemField(forms.CharField):
    """A PEM text the upload needs, pasted or given as the file field beside it: shown
    as required, but an empty one is left to the service's check ("Paste the ...") once
    the form has looked at the file."""

    def validate(self, value: Any) -> None:
        return None


def _pem_area(rows: int, placeholder: str, widget: type[forms.Textarea] = forms.Textarea):
    return widget(
        attrs={
            "rows": rows,
            "class": "mono",
            "placeholder": placeholder,
            "spellcheck": "false",
            "autocomplete": "off",
        }
    )


class CertificateUploadForm(forms.Form):
    """Host name, chain and key; each PEM pasted or read from a file (not both).

    The field names are the service's (`hostname`, `chain`, `key`), so a ValidationError
    of parse_bundle lands next to the field it names.
    """

    hostname = forms.CharField(
        label="Host name",
        max_length=253,
        widget=forms.TextInput(
            attrs={"placeholder": "shop.example.com", "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="The certificate must name it (or a wildcard that covers it).",
    )
    chain = PemField(
        label="Certificate chain (PEM)",
        strip=False,
        widget=_pem_area(8, "-----BEGIN CERTIFICATE-----"),
        help_text="The server's certificate first, then each issuer in order.",
    )
    chain_file = forms.FileField(label="…or the chain as a file", required=False)
    key = PemField(
        label="Private key (PEM)",
        strip=False,
        widget=_pem_area(6, "-----BEGIN PRIVATE KEY-----", UnechoedTextarea),
        help_text="Without a passphrase. Stored encrypted; never shown again.",
    )
    key_file = forms.FileField(label="…or the key as a file", required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for field, limit in (("chain", MAX_CHAIN_BYTES), ("key", MAX_KEY_BYTES)):
            upload = cleaned.get(f"{field}_file")
            if not upload:
                continue
            if (cleaned.get(field) or "").strip():
                self.add_error(f"{field}_file", "Paste the PEM or choose a file, not both.")
                continue
            text = self._read(upload, f"{field}_file", limit)
            if text is not None:
                cleaned[field] = text
        return cleaned

    def _read(self, upload: UploadedFile, field: str, limit: int) -> str | None:
        """The file's text, or an error on `field` when it is too big or not text (a DER
        file, say)."""
        if upload.size is not None and upload.size > limit:
            self.add_error(field, f"The file may have at most {limit // 1024} KiB.")
            return None
        try:
            return upload.read(limit + 1).decode("utf-8")
        except UnicodeDecodeError:
            self.add_error(field, "Not a PEM file (PEM is text: -----BEGIN ...).")
            return None
