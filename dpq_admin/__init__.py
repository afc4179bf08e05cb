"""The dpq dashboard: see and repair the queue from the Django admin."""
