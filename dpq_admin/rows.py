"""Rows of the dashboard's tables rendered by one fixed method per column.

django-tables2 renders each cell by inspecting the signature of the column's render
method (``inspect.signature``, once per cell) and, for a date column, by compiling a
template per cell: most of a 50-row page's time. A ``FastRows`` table keeps django-tables2
for its columns, headers, sorting and pagination, and renders its rows in Python: a
column's cell is ``cell_<name>(record)`` when the table defines it, else the record's
attribute of that name, escaped (a date in the current time zone and
``SHORT_DATETIME_FORMAT``, as ``DateTimeColumn`` shows it). The table template
(fast_table.html) outputs ``table.rendered_body``.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.utils import formats, timezone
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe


def format_datetime(value: datetime.datetime) -> str:
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return formats.date_format(value, settings.SHORT_DATETIME_FORMAT)


def attributes_html(attributes: dict[str, object]) -> str:
    """` name="value"` pairs, escaped; empty values left out."""
    return "".join(
        f' {escape(name)}="{escape(value)}"'
        for name, value in attributes.items()
        if value != ""
    )


class FastRows:
    """A mixin of ``django_tables2.Table``: rows rendered without per-cell introspection."""

    def row_attributes(self, record: Any) -> dict[str, object]:
        return {}

    def default_cell(
        self,
        record: Any,
        name: str,
        default: object,
        times: dict[datetime.datetime, str] | None = None,
    ) -> str:
        value = getattr(record, name, None)
        if value is None or value == "":
            return conditional_escape(default)
        if isinstance(value, datetime.datetime):
            # Django's date formatting is the costliest part of a row: jobs enqueued
            # together share their times, so each time is formatted once per page.
            times = {} if times is None else times
            if value not in times:
                times[value] = conditional_escape(format_datetime(value))
            return times[value]
        return conditional_escape(value)

    def cell(self, record: Any, name: str) -> str:
        """The HTML of one cell, as ``rendered_rows`` shows it."""
        bound = self.columns[name]
        method = getattr(self, f"cell_{name}", None)
        if method is not None:
            return conditional_escape(method(record))
        return self.default_cell(record, name, bound.default)

    @property
    def rendered_body(self) -> SafeString:
        """The rows of the current page as HTML, every cell escaped (one string: a template
        loop over 500 cells costs more than the cells)."""
        columns = []
        for bound in self.columns:
            cell = getattr(self, f"cell_{bound.name}", None)
            columns.append(
                (bound.name, bound.attrs["td"].as_html(), bound.default, cell)
            )
        html: list[str] = []
        times: dict[datetime.datetime, str] = {}
        for index, row in enumerate(self.paginated_rows):
            record = row.record
            attributes = self.row_attributes(record)
            parity = "even" if index % 2 == 0 else "odd"
            attributes["class"] = " ".join(
                part for part in (parity, str(attributes.get("class", ""))) if part
            )
            html.append(f"<tr{attributes_html(attributes)}>")
            for name, td_attrs, default, cell in columns:
                text = (
                    conditional_escape(cell(record))
                    if cell is not None
                    else self.default_cell(record, name, default, times)
                )
                html.append(f"<td {td_attrs}>{text}</td>")
            html.append("</tr>\n")
        return mark_safe("".join(html))  # every part above is escaped
