"""Reading heartbeats: which roles have a live process."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max
from django.utils import timezone

from ctrlplane.heartbeats import conf
from ctrlplane.heartbeats.models import Heartbeat, Role


@dataclass(frozen=True)
class RoleStatus:
    role: Role
    live: list[Heartbeat]  # processes whose last heartbeat is fresh, newest first
    last_seen: datetime | None  # the newest heartbeat of any process of this role, ever

    @property
    def alive(self) -> bool:
        return bool(self.live)


def role_statuses(*, now: datetime | None = None) -> dict[Role, RoleStatus]:
    now = now or timezone.now()
    fresh = Heartbeat.objects.filter(
        seen_at__gte=now - conf.stale_after(), stopped_at__isnull=True
    ).order_by("-seen_at")
    live: dict[str, list[Heartbeat]] = {}
    for row in fresh:
        live.setdefault(row.role, []).append(row)
    newest = dict(
        Heartbeat.objects.values("role")
        .annotate(newest=Max("seen_at"))
        .values_list("role", "newest")
    )
    return {
        role: RoleStatus(role=role, live=live.get(role, []), last_seen=newest.get(role))
        for role in Role
    }
