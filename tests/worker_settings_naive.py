"""Worker settings with ``USE_TZ = False``, in a zone far from UTC.

Naive datetimes are then local time (UTC+9), so a due time worked out against the wrong clock
is hours off, not seconds.
"""

from __future__ import annotations

from tests.worker_settings import *  # noqa: F403

USE_TZ = False
TIME_ZONE = "Asia/Tokyo"
