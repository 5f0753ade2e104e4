"""Plumbing for the apps' filtersets (django-filter, as NetBox's `filtersets.py`).

Each app declares one FilterSet in its `filters.py`; its HTML list and its API list
both use it. Here: the API backend that applies it to lists only, and the id filter the
apps share.

Invalid values answer 400 naming the parameter (django-filter's `translate_validation`,
through DRF's error format). A filter never widens what the caller sees: it narrows a
queryset already limited by `visible_to`, and a value that matches nothing (a foreign
id or slug, like a missing one) finds nothing rather than failing.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field


class ListFilterBackend(DjangoFilterBackend):
    """The view's `filterset_class` on its list action only.

    Detail routes and actions (`GET /stacks/5/?environment=7`, `POST .../scale/`) look
    objects up without reading query parameters, as they did before the filtersets.
    A view may add keyword arguments for its filterset with `filterset_kwargs()`.
    """

    def filter_queryset(self, request: Any, queryset: QuerySet, view: Any) -> QuerySet:
        if getattr(view, "action", None) != "list":
            return queryset
        return super().filter_queryset(request, queryset, view)

    def get_filterset_kwargs(self, request: Any, queryset: QuerySet, view: Any) -> dict:
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        extra = getattr(view, "filterset_kwargs", None)
        return {**kwargs, **extra()} if extra is not None else kwargs


class IdField(forms.IntegerField):
    """An object id in a query parameter."""

    default_error_messages = {"invalid": "Give a number (an id)."}


class IdFilter(django_filters.NumberFilter):
    """Objects whose `field_name` has this id; an id that is not yours finds nothing."""

    field_class = IdField

    def __init__(self, *, help_text: str, **kwargs: Any):
        super().__init__(help_text=help_text, **kwargs)
        # The schema says integer (django-filter's NumberFilter alone reads as any number).
        extend_schema_field({"type": "integer", "description": help_text})(self)
