"""Page sizes with a ceiling: the API's (README, API) and the pages' row counts.

In a module of its own: DRF reads DEFAULT_PAGINATION_CLASS while `rest_framework.generics`
is imported, which apps.core.api itself imports.
"""

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from rest_framework.pagination import LimitOffsetPagination

# The most rows one page of a list answers, whatever `?limit=` asks: one request cannot
# make the server build a page of a million rows.
MAX_PAGE_SIZE = 500


class CappedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=&offset=` pages of PAGE_SIZE rows by default, at most MAX_PAGE_SIZE."""

    max_limit = MAX_PAGE_SIZE


class CappedPaginator(Paginator):
    """A page list that counts at most `max_count` rows (`capped` says there are more).

    Counting every row of a long list (a tenant's million events) costs a scan of all of
    them on every page view; counting up to a bound costs at most that bound. The pages
    go as far as the bound: filters (a day, an action) reach older rows.
    """

    max_count = 10_000

    @cached_property
    def _counted(self) -> int:
        return self.object_list[: self.max_count + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.max_count)

    @property
    def capped(self) -> bool:
        return self._counted > self.max_count
