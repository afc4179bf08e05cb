from __future__ import annotations

__version__ = "2.0.0"


def __getattr__(name: str) -> object:
    # dpq.Schedule, imported only when asked for: `import dpq` must not need settings.
    if name == "Schedule":
        from dpq.schedules import Schedule

        return Schedule
    # dpq.pause_queue(name), dpq.resume_queue(name), dpq.paused_queues(): dpq/pauses.py.
    if name in ("pause_queue", "resume_queue", "paused_queues"):
        from dpq import pauses

        return getattr(pauses, name)
    raise AttributeError(f"module 'dpq' has no attribute {name!r}")
