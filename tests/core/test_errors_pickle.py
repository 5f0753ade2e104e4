"""Every error Berth raises survives pickling: Celery carries task failures and retries
between processes by pickle, and an error that cannot be rebuilt reaches the caller as
`UnpickleableExceptionWrapper`, without its message or its flags."""

import pickle

import pytest
from celery.utils.serialization import get_pickleable_exception

from apps.catalog.questions import BerthConfigError
from apps.compose.errors import ComposeError, FieldError, Problem
from apps.deployments.reconciler import CancelledError, WaitFailedError
from apps.hosts.engine import EngineError
from apps.registry.client import RegistryError
from apps.registry.gate import GateError, QuotaExceededError
from apps.registry.gc import GarbageCollectionError
from apps.registry.notifications import EventRefusedError
from apps.registry.token.service import TokenRefusedError

ERRORS = [
    EngineError("The engine answered 409: the name is taken", retryable=False, status=409),
    EngineError("timed out", retryable=True),
    ComposeError([Problem("services.web.image", "an image id is not allowed")]),
    FieldError("must be absolute", at="[2]"),
    BerthConfigError(["questions[0]: a name is needed", "routes: unknown key"]),
    RegistryError("manifest unknown", status=404),
    EventRefusedError("not a push", ignored=True),
    TokenRefusedError("denied"),
    GarbageCollectionError("registry still running"),
    CancelledError("The deploy was cancelled."),
    WaitFailedError("db is unhealthy"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_error_survives_pickle_with_its_fields(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
    assert get_pickleable_exception(error) is error  # Celery sends it as it is


def test_gate_errors_pickle():
    for cls in (GateError, QuotaExceededError):
        try:
            error = cls("refused")
        except TypeError:  # a constructor with other arguments: covered where it is used
            continue
        assert str(pickle.loads(pickle.dumps(error))) == str(error)
