#!/usr/bin/env python
"""A small shop written against django-postgres-queue 1.0.0, run unchanged on dpq."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "seedproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
