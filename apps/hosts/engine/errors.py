"""Berth's one error type for everything that goes wrong between Berth and an engine.

Callers never see docker-py or requests exceptions: they get an `EngineError` whose
message an operator can read and whose `retryable` flag tells a task whether trying
again later may help (the engine is down or slow) or not (the engine said no).
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests

MAX_REASON_CHARS = 300


class EngineError(Exception):
    """A failed call to a Docker engine, with a readable message."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        """Pickle by value: Celery carries task failures and retries between processes,
        and the default (`cls(*args)`) cannot pass the keyword-only arguments."""
        return (_rebuild, (self.message, self.retryable, self.status))

    @property
    def not_found(self) -> bool:
        return self.status == 404


def _rebuild(message: str, retryable: bool, status: int | None) -> EngineError:
    return EngineError(message, retryable=retryable, status=status)


def _causes(exc: BaseException, depth: int = 0) -> Iterator[BaseException]:
    """The exception and everything nested in it (args, causes, contexts), outermost first."""
    if depth > 8:
        return
    yield exc
    nested = [
        exc.__cause__,
        exc.__context__,
        *[a for a in exc.args if isinstance(a, BaseException)],
    ]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        nested.append(reason)
    for inner in nested:
        if inner is not None and inner is not exc:
            yield from _causes(inner, depth + 1)


def _root_os_error(exc: BaseException) -> OSError | None:
    """The innermost socket-level error; requests' own errors are OSErrors too, so skip them."""
    found = None
    for inner in _causes(exc):
        if isinstance(inner, OSError) and not isinstance(inner, requests.RequestException):
            found = inner
    return found


def _describe_os_error(err: OSError) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"the engine's TLS certificate was not accepted ({err.verify_message})"
    if isinstance(err, ssl.SSLError):
        return f"the TLS handshake failed ({err.reason or err})"
    if isinstance(err, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(err, FileNotFoundError):
        return "no socket file at that path"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, TimeoutError):
        return "timed out"
    return err.strerror or str(err) or type(err).__name__


def _reason(exc: BaseException) -> str:
    root = _root_os_error(exc)
    text = _describe_os_error(root) if root is not None else str(exc) or type(exc).__name__
    return text[:MAX_REASON_CHARS]


def _is_timeout(exc: BaseException) -> bool:
    return any(isinstance(inner, requests.Timeout | socket.timeout) for inner in _causes(exc))


def _from_api_error(exc: docker.errors.APIError, endpoint: str) -> EngineError:
    status = exc.status_code
    explanation = exc.explanation
    if not explanation and exc.response is not None:
        explanation = exc.response.reason
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    retryable = status is None or status >= 500 or status in (408, 429)
    message = f"The engine at {endpoint} answered {status}: {explanation or exc}"
    return EngineError(message[:1000], retryable=retryable, status=status)


def translate(exc: BaseException, endpoint: str, timeout: float) -> EngineError:
    """Map any docker-py, requests or socket error to an EngineError."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, docker.errors.APIError):
        return _from_api_error(exc, endpoint)
    if _is_timeout(exc):
        return EngineError(
            f"The engine at {endpoint} did not answer within {timeout:g}s.", retryable=True
        )
    if isinstance(exc, docker.errors.TLSParameterError | docker.errors.InvalidArgument):
        return EngineError(f"Bad engine settings for {endpoint}: {exc}", retryable=False)
    return EngineError(f"Cannot reach the engine at {endpoint}: {_reason(exc)}", retryable=True)


@contextmanager
def engine_errors(endpoint: str, timeout: float) -> Iterator[None]:
    """Run a block of docker-py calls; whatever it raises comes out as an EngineError."""
    try:
        yield
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        raise translate(exc, endpoint, timeout) from exc


_DIAL = re.compile(
    r'(?:Get|Head) "?https?://([^/"]+)/v2/[^:]*"?: (?:dial tcp [^:]+(?::\d+)?: )?(.*)$'
)
_REGISTRY_REASONS = (
    ("connection refused", "the registry at {host} cannot be reached (connection refused)"),
    ("no such host", "the registry host name {host} does not resolve"),
    ("i/o timeout", "the registry at {host} did not answer in time"),
    ("deadline exceeded", "the registry at {host} did not answer in time"),
    (
        "server gave HTTP response to HTTPS client",
        "the registry at {host} speaks plain "
        "HTTP but the engine asked over HTTPS (list it in the engine's insecure-registries)",
    ),
    (
        "certificate signed by unknown authority",
        "the registry at {host} has a TLS certificate the engine does not trust",
    ),
)
_PULL_REASONS = (
    ("manifest unknown", "the registry has no such image or tag"),
    ("not found", "the registry has no such image or tag"),
    ("unauthorized", "the registry refused the pull (no credentials, or no right to it)"),
    ("denied", "the registry refused the pull (no right to this repository)"),
    ("toomanyrequests", "the registry is rate-limiting pulls; try again later"),
)


def pull_reason(detail: str) -> str:
    """The engine's pull error in words a user acts on ("the registry at X cannot be
    reached") instead of Go's transport text; an error not recognised stays as it is."""
    text = " ".join(str(detail).split())
    dial = _DIAL.search(text)
    host = dial.group(1) if dial else ""
    lowered = text.lower()
    for needle, words in _REGISTRY_REASONS:
        if needle.lower() in lowered:
            return words.format(host=host or "its address")
    for needle, words in _PULL_REASONS:
        if needle in lowered:
            return words
    return text
