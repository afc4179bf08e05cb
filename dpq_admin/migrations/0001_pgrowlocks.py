"""Create the pgrowlocks extension when the role may; otherwise warn and change nothing."""

from __future__ import annotations

import logging

from django.db import migrations

logger = logging.getLogger("dpq.admin")


def create_pgrowlocks(apps, schema_editor):
    from dpq import sql

    alias = schema_editor.connection.alias
    installed, available, may_create = sql.fetch_one(alias, sql.PGROWLOCKS_STATUS, {})
    if installed:
        return
    if available and may_create:
        sql.execute(alias, sql.CREATE_PGROWLOCKS_EXTENSION)
        return
    reason = (
        "the server does not ship it (install PostgreSQL's contrib package)"
        if not available
        else "creating it needs a superuser"
    )
    logger.warning(
        "dpq_admin: pgrowlocks was not installed because %s. The dashboard works without "
        "it but shows running jobs as unknown. As a superuser, run: CREATE EXTENSION "
        "pgrowlocks;",
        reason,
    )


class Migration(migrations.Migration):
    dependencies = [("dpq", "0001_initial")]

    operations = [
        # Reversing leaves the extension: other tools may use it.
        migrations.RunPython(create_pgrowlocks, migrations.RunPython.noop, elidable=False),
    ]
