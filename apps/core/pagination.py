"""Page sizes with a ceiling: the API's (README, API) and the pages' row counts.

In a module of its own: DRF reads DEFAULT_PAGINATION_CLASS while `rest_framework.generics`
is imported, which apps.core.api itself imports.
"""

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from rest_framework.pagination import LimitOffsetPagination

# The most rows one page of a list answers, whatever `?limit=` asks: one request cannot
# make the server build a page of a million rows.
MAX_PAGE_SIZE = 500


class CappedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=&offset=` pages of PAGE_SIZE rows by default, at most MAX_PAGE_SIZE."""

    max_limit = MAX_PAGE_SIZE


class UncountedPaginator(Paginator):
    """Pages of a long list without its total: "Newer" and "Older" and the page number.

    Counting a tenant's million events costs a scan of all of them on every page view
    (about a second here), more than the page itself. Each page reads one row more than
    it shows to know whether an older page exists; nothing else.
    """

    uncounted = True

    @property
    def num_pages(self) -> int:
        return 0  # unknown: `?page=last` finds no page (404)

    @property
    def count(self) -> int:
        raise TypeError("An UncountedPaginator does not count its rows.")

    def validate_number(self, number) -> int:
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer.") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1.")
        return number

    def page(self, number) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage("That page contains no results.")
        return UncountedPage(rows[: self.per_page], number, self, len(rows) > self.per_page)


class UncountedPage(Page):
    """A page that knows whether another follows without knowing how many."""

    def __init__(self, object_list, number: int, paginator: Paginator, more: bool) -> None:
        super().__init__(object_list, number, paginator)
        self.more = more

    def has_next(self) -> bool:
        return self.more


class CappedCountPagination(CappedLimitOffsetPagination):
    """`?limit=&offset=` over a long list whose `count` stops early (README, API).

    `count` is exact up to `max_count` rows (or up to one row past the page asked for,
    when that is further); past it, it is a lower bound and `next` says whether more
    rows follow. Counting a million events took about a second.
    """

    max_count = 1000

    def get_count(self, queryset) -> int:
        offset = self.get_offset(self.request)
        bound = max(self.max_count, offset + self.get_limit(self.request) + 1)
        # Unordered: how many rows there are up to the bound does not depend on which.
        return queryset.order_by()[:bound].count()
