"""What the demo's tasks write to: accounts that transfers move money between, and reports."""

from __future__ import annotations

from django.db import models


class Account(models.Model):
    """A balance. Transfers only move money, so the total of all accounts never changes."""

    name = models.CharField(max_length=50, unique=True)
    balance = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.balance}"


class Report(models.Model):
    """The result of a (slow) report job: the total it found."""

    created_at = models.DateTimeField(auto_now_add=True)
    accounts = models.IntegerField()
    total = models.IntegerField()

    def __str__(self) -> str:
        return f"report {self.id}: {self.accounts} accounts, total {self.total}"
