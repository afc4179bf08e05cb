"""Forms of the dashboard: list filters and the requeue-all-failed form."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms

MAX_SEARCH_LENGTH = 200
MAX_TASK_LENGTH = 255


def _choices(names: Iterable[str], everything: str) -> list[tuple[str, str]]:
    return [("", everything), *((name, name) for name in names)]


class JobFilterForm(forms.Form):
    """Filters of a job list. Queue and task must be names the counts found; an unknown
    name is an error, never a query. With ``tasks=None`` (too many jobs to list their
    tasks) the task is typed in, and bound as a parameter like any value."""

    queue = forms.ChoiceField(required=False)
    task = forms.ChoiceField(required=False)
    q = forms.CharField(
        required=False, max_length=MAX_SEARCH_LENGTH, label="Search id or args"
    )

    def __init__(
        self,
        *args: Any,
        queues: Iterable[str],
        tasks: Iterable[str] | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = _choices(queues, "all queues")
        if tasks is None:
            self.fields["task"] = forms.CharField(
                required=False, max_length=MAX_TASK_LENGTH
            )
        else:
            self.fields["task"].choices = _choices(tasks, "all tasks")

    def value(self, name: str) -> str:
        """The field's cleaned value, or "" when it is missing or invalid."""
        if not self.is_bound:
            return ""
        self.is_valid()
        return self.cleaned_data.get(name) or ""


class RequeueFailedForm(forms.Form):
    """Requeue every failed job, or those of one queue and/or one task."""

    queue = forms.ChoiceField(required=False)
    task = forms.ChoiceField(required=False)
    reset_attempts = forms.BooleanField(required=False, label="Reset attempts")

    def __init__(
        self, *args: Any, queues: Iterable[str], tasks: Iterable[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = _choices(queues, "every queue")
        self.fields["task"].choices = _choices(tasks, "every task")
