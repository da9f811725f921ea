"""Logging filters that settings.LOGGING loads (so: no Django imports here)."""

import logging

# Beat sends these every few seconds. Celery's own lines about each run (beat sending it,
# the worker receiving it and finishing it) would be most of an idle log; the task logs
# at INFO itself when it did something.
ROUTINE_TASKS = frozenset({"webhooks.tasks.sweep"})


class RoutineTasksAtDebug(logging.Filter):
    """Turns Celery's INFO lines about a routine task into DEBUG lines (dropped unless the
    logger is enabled for DEBUG). Its warnings and errors are left as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or _task_name(record) not in ROUTINE_TASKS:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _task_name(record: logging.LogRecord) -> object:
    args = record.args
    if isinstance(args, dict):  # the worker's received/succeeded lines: a context mapping
        return args.get("name")
    if isinstance(args, tuple) and len(args) == 2:  # beat: "Sending due task %s (%s)"
        return args[1]
    return None
