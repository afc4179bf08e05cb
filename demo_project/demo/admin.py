from __future__ import annotations

from django.contrib import admin

from demo.models import Account, Report


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "balance"]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "accounts", "total"]
