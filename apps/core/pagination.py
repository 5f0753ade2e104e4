"""The API's page size, with a ceiling (README, API).

In a module of its own: DRF reads DEFAULT_PAGINATION_CLASS while `rest_framework.generics`
is imported, which apps.core.api itself imports.
"""

from rest_framework.pagination import LimitOffsetPagination

# The most rows one page of a list answers, whatever `?limit=` asks: one request cannot
# make the server build a page of a million rows.
MAX_PAGE_SIZE = 500


class CappedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=&offset=` pages of PAGE_SIZE rows by default, at most MAX_PAGE_SIZE."""

    max_limit = MAX_PAGE_SIZE
