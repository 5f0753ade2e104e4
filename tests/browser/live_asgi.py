"""The production ASGI app with static files served from the finders, for daphne in the
live browser tests and the log benchmark (no collectstatic needed in a test run).

BERTH_TEST_QUEUE, when set, is the Celery queue this run's worker consumes (the
browser fixtures give each run its own queue on the shared Redis database).
"""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from paas.asgi import application as production
from paas.celery import app as celery_app

if os.environ.get("BERTH_TEST_QUEUE"):
    celery_app.conf.task_default_queue = os.environ["BERTH_TEST_QUEUE"]

application = type(production)(
    {
        "http": ASGIStaticFilesHandler(production.application_mapping["http"]),
        "websocket": production.application_mapping["websocket"],
    }
)
