#!/usr/bin/env python
"""Django's command-line utility for the demo project."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    # The demo runs from a checkout: use this checkout's dpq and dpq_admin whether or not
    # the package is installed in the virtualenv.
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
