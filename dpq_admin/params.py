"""The query parameters of the dashboard's tables: page, per_page and sort, checked.

django-tables2's ``RequestConfig`` passes ``page`` and ``per_page`` to the paginator as
they come (a page past bigint reaches the database as an OFFSET, a ``per_page`` of 0
divides by zero) and hands any ``sort`` to the table. ``configure`` reads them here
instead: a value it cannot use is replaced by the default and named in a notice that
the page shows, so a hand-edited URL gets the first page and a sentence, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.paginator import EmptyPage, Page, PageNotAnInteger
from django.http import HttpRequest
from django_tables2 import LazyPaginator, Table

# The deepest page a job list shows: a page is an OFFSET, and reaching page N reads the
# N - 1 pages before it. Past this, a filter or the other sort order reaches the jobs.
MAX_PAGE = 200
MAX_PER_PAGE = 100
# A parameter's value is quoted in a notice up to this many characters.
QUOTE_LENGTH = 40


@dataclass
class Notices:
    """What a page could not use from its URL, one sentence each."""

    messages: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def __iter__(self):
        return iter(self.messages)


def quoted(value: str) -> str:
    shown = value.replace("\x00", "\\x00")
    if len(shown) > QUOTE_LENGTH:
        shown = shown[: QUOTE_LENGTH - 1] + "…"
    return f"“{shown}”"


class UncountedPaginator(LazyPaginator):
    """django-tables2's LazyPaginator without its COUNT: ``list()`` of the page's rows asks
    their length first, which django-tables2 answers with a ``count()`` of the sliced
    queryset (the page's query run twice). The rows are iterated instead."""

    def page(self, number: int) -> Page:
        number = self.validate_number(number or 1)
        bottom = (number - 1) * self.per_page
        top = (
            bottom + self.per_page + self.orphans + 1
        )  # one more: is there a next page
        objects = [row for row in self.object_list[bottom:top]]
        if len(objects) > self.per_page + self.orphans:
            self._num_pages = number + 1
            objects = objects[: self.per_page]
        elif number != 1 and len(objects) <= self.orphans:
            raise EmptyPage("That page contains no results")
        else:
            self._num_pages = self._final_num_pages = number
        return Page(objects, number, self)


def positive_int(value: str, maximum: int) -> int | None:
    """``value`` as an int in 1..maximum, or None ("abc", "0", "-1", "1e9", "²", huge)."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    number = int(text)
    return number if 1 <= number <= maximum else None


def rows_needed(request: HttpRequest, *, per_page: int, prefix: str = "") -> int:
    """How many rows ``configure`` can read for the page the request asks for (the page's
    rows, those before it, and one to tell whether a next page exists)."""
    page = positive_int(request.GET.get(f"{prefix}page", ""), MAX_PAGE) or 1
    rows = positive_int(request.GET.get(f"{prefix}per_page", ""), MAX_PER_PAGE)
    return page * (rows or per_page) + 1


def _sort(request: HttpRequest, table: Table, notices: Notices) -> None:
    name = table.prefixed_order_by_field
    values = request.GET.getlist(name)
    if not values:
        return
    orderable = {bound.name for bound in table.columns if bound.orderable}
    wanted: list[str] = []
    for value in values:
        for part in value.split(","):
            column = part.removeprefix("-")
            if column in orderable:
                wanted.append(part)
            else:
                notices.add(
                    f"This list cannot be sorted by {quoted(part)} ({name}): "
                    f"showing its usual order. Sort by clicking a column's heading."
                )
                return
    table.order_by = wanted


def configure(
    request: HttpRequest,
    table: Table,
    notices: Notices,
    *,
    per_page: int,
    paginate: bool = True,
    **paginate_kwargs: object,
) -> Table:
    """Sort and paginate ``table`` from the request, as RequestConfig does, with checks."""
    table.request = request
    _sort(request, table, notices)
    if not paginate:
        return table
    page_field = table.prefixed_page_field
    per_page_field = table.prefixed_per_page_field
    raw_per_page = request.GET.get(per_page_field)
    if raw_per_page is not None:
        chosen = positive_int(raw_per_page, MAX_PER_PAGE)
        if chosen is None:
            notices.add(
                f"{quoted(raw_per_page)} is not a number of rows per page from 1 to "
                f"{MAX_PER_PAGE} ({per_page_field}): showing {per_page}."
            )
        else:
            per_page = chosen
    raw_page = request.GET.get(page_field)
    page = 1
    if raw_page is not None:
        number = positive_int(raw_page, 2**63)
        if number is None:
            notices.add(
                f"{quoted(raw_page)} is not a page number ({page_field}): "
                f"showing page 1."
            )
        elif number > MAX_PAGE:
            notices.add(
                f"Page {number} is too deep: lists show up to page {MAX_PAGE}; narrow "
                f"the list with a filter or the search, or sort it the other way to "
                f"reach the rest: showing page 1."
            )
        else:
            page = number
    try:
        table.paginate(page=page, per_page=per_page, **paginate_kwargs)
    except (EmptyPage, PageNotAnInteger):
        notices.add(f"Page {page} is past the end of this list: showing page 1.")
        table.paginate(page=1, per_page=per_page, **paginate_kwargs)
    return table
