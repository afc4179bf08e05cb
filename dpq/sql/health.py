"""Statements behind the dashboard's Queue health page: vacuum, transactions, connections,
sizes. Plain statements, one per name; see dpq.sql for the rules they follow. They read
statistics views and catalogs only and take no lock on the job table.
"""

from __future__ import annotations

# The job table's live and dead rows and its last vacuum and analyze, manual and automatic
# (pg_stat_user_tables). One row, or none before the statistics know the table.
# %(table_name)s is the job table's name, bound as text.
JOB_TABLE_STATS = """
    SELECT n_live_tup, n_dead_tup, last_vacuum, last_autovacuum, last_analyze,
           last_autoanalyze, vacuum_count + autovacuum_count
    FROM pg_stat_user_tables
    WHERE relid = to_regclass(%(table_name)s)
"""

# The session of this database whose snapshot or transaction is the oldest, which is what
# vacuum cannot remove dead rows past: pid, application_name, client address, state,
# xact_start, seconds since xact_start, and the age in transactions of its xmin. At most one
# row; sessions of other roles show no detail without pg_read_all_stats.
OLDEST_TRANSACTION = """
    SELECT pid, application_name, client_addr::text, state, xact_start,
           EXTRACT(EPOCH FROM now() - xact_start)::float8,
           greatest(age(backend_xmin), age(backend_xid))
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)
    ORDER BY greatest(age(backend_xmin), age(backend_xid)) DESC
    LIMIT 1
"""

# Connections to the server now (client backends of every database) against the limit:
# in use, max_connections, superuser_reserved_connections. One row.
CONNECTION_USE = """
    SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
           current_setting('max_connections')::int,
           current_setting('superuser_reserved_connections')::int
"""

# The job table's size on disk and each of its indexes': name, bytes; the table first
# (its heap, without indexes or TOAST), then the indexes by name. %(table_name)s as above.
JOB_TABLE_SIZES = """
    SELECT c.relname::text, pg_relation_size(c.oid), 'table'
    FROM pg_class c WHERE c.oid = to_regclass(%(table_name)s)
    UNION ALL
    SELECT * FROM (
        SELECT i.relname::text, pg_relation_size(i.oid), 'index'
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = to_regclass(%(table_name)s)
        ORDER BY i.relname
    ) AS indexes
"""
