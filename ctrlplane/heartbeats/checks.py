from typing import Any

from django.core.checks import CheckMessage, Error, register

from ctrlplane.heartbeats import conf


@register()
def heartbeat_interval_check(**kwargs: Any) -> list[CheckMessage]:
    if conf.interval() > 0:
        return []
    return [
        Error(
            "HEARTBEAT_INTERVAL must be a positive number of seconds.",
            id="heartbeats.E001",
        )
    ]
