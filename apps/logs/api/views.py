"""Log lines over the API: search with filters, keyset pages, a tail, and a download;
and each environment's retention (`/api/v1/logs/retention/`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from apps.core.api import TenantScopedViewSet
from apps.logs import pages, services
from apps.logs.api.serializers import (
    LogLineSerializer,
    LogPageSerializer,
    LogRetentionSerializer,
)
from apps.logs.filters import LogFilterSet
from apps.logs.models import LogLine
from apps.tenants.models import Environment

PAGE_PARAMS = {"cursor", "limit", "format"}
DOWNLOAD_PARAMS = {"output", "format"}
_BAD = OpenApiResponse(
    description="A parameter is unknown or its value is invalid; the body names each "
    "parameter with its reasons."
)


def filter_parameters() -> list[OpenApiParameter]:
    """The query parameters' schema, read from the filterset the page uses too."""
    params = []
    for name in LogFilterSet.base_filters:
        kind = OpenApiTypes.INT if name == "after" else OpenApiTypes.STR
        enum = ["stdout", "stderr"] if name == "stream" else None
        params.append(
            OpenApiParameter(name, kind, enum=enum, description=LogFilterSet.DESCRIPTIONS[name])
        )
    return params


class LogLineViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Lines of your tenants' containers, newest first (`after`: in stored order)."""

    model = LogLine
    serializer_class = LogLineSerializer
    filter_backends: list = []  # LogFilterSet is applied in `lines()`, strictly

    def lines(self, passthrough: set[str]):
        found = LogFilterSet(
            self.request.query_params,
            self.get_queryset().select_related("tenant", "environment"),
            strict=True,
            passthrough=passthrough,
        )
        if not found.is_valid():
            raise exceptions.ValidationError(found.errors)
        return found.qs

    @extend_schema(
        parameters=[
            *filter_parameters(),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="From a page's `next`."),
            OpenApiParameter("limit", OpenApiTypes.INT, description="Lines per page (1-1000)."),
        ],
        responses={200: LogPageSerializer, 400: _BAD},
    )
    def list(self, request, *args, **kwargs):
        lines = self.lines(PAGE_PARAMS)
        limit = pages.parse_limit(request.query_params.get("limit"))
        if "after" in request.query_params:
            page = pages.tail(lines, limit)
        else:
            page = pages.newest_first(lines, request.query_params.get("cursor"), limit)
        url = request.build_absolute_uri()
        return Response(
            {
                "next": replace_query_param(url, "cursor", page.next_cursor)
                if page.next_cursor
                else None,
                "results": LogLineSerializer(page.lines, many=True).data,
            }
        )

    @extend_schema(
        parameters=[
            *filter_parameters(),
            OpenApiParameter(
                "output", OpenApiTypes.STR, enum=[*services.EXPORT_FORMATS], default="text"
            ),
        ],
        responses={(200, "text/plain"): OpenApiTypes.STR, 400: _BAD},
    )
    @action(detail=False, methods=["get"])
    def download(self, request):
        """Every matching line, oldest first, streamed (text or JSON lines)."""
        output = request.query_params.get("output") or "text"
        if output not in services.EXPORT_FORMATS:
            raise exceptions.ValidationError({"output": ["Use text or jsonl."]})
        return download_response(request, self.lines(DOWNLOAD_PARAMS), output)


class LogRetentionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """How long each environment of your tenants keeps its lines, addressed by the
    environment's id. `PUT`/`PATCH` `{"days": n}` (owners and admins; 0 is the platform
    default): an environment you cannot see is 404, one you only read is 403."""

    model = Environment
    serializer_class = LogRetentionSerializer
    filter_backends: list = []
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        environments = super().get_queryset().select_related("tenant")
        return services.with_retention(environments).order_by("tenant__slug", "slug")

    @extend_schema(responses={200: LogRetentionSerializer, 400: _BAD})
    def update(self, request, pk=None, partial=False):
        environment = self.get_object()  # first: a foreign one is 404 whatever the body
        serializer = self.get_serializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        if "log_days" in serializer.validated_data:  # a PATCH without `days` changes nothing
            services.set_retention(request.user, environment, serializer.validated_data["log_days"])
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(responses={200: LogRetentionSerializer, 400: _BAD})
    def partial_update(self, request, pk=None):
        return self.update(request, pk, partial=True)


def download_response(request, lines, output: str) -> StreamingHttpResponse:
    """The streamed file, for the API and the page alike.

    Under daphne (ASGI) Django would read a plain iterator into a list before sending a
    byte (a million lines in memory); there the chunks come from an async iterator that
    fetches each one in the request's sync thread (one database connection, one
    server-side cursor). The test client and WSGI servers get the plain iterator.
    """
    jsonl = output == "jsonl"
    chunks = services.export_chunks(lines, output)
    if isinstance(getattr(request, "_request", request), ASGIRequest):
        chunks = _async_chunks(chunks)
    response = StreamingHttpResponse(
        chunks,
        content_type="application/x-ndjson" if jsonl else "text/plain; charset=utf-8",
    )
    name = "logs.jsonl" if jsonl else "logs.txt"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    fetch = sync_to_async(partial(next, chunks, None), thread_sensitive=True)
    while (chunk := await fetch()) is not None:
        yield chunk
