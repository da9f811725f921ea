"""Which claimed delivery is sent next: round robin over tenants, then over their endpoints.

Pure bookkeeping (no threads, no event loop, no database), so every rule here is tested by
table and by property. The engine offers each claimed job, asks `next()` for one to start
whenever it can start one, and reports `done()` when its attempt ends. Three caps hold at
every moment:

- at most `senders` jobs are started and not done, in all;
- at most `per_tenant` of them belong to one tenant, so one tenant's dead endpoints can
  take at most its share of the process, never all of it;
- at most `per_endpoint` belong to one endpoint (its lane); the rest of that endpoint's
  jobs wait, in the order offered.

Among the tenants that may start a job, the one served longest ago goes first, and within
it the endpoint served longest ago: round robin, which for jobs that each cost one slot is
deficit round robin with a quantum of one.
"""

from collections import OrderedDict, defaultdict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Schedulable(Protocol):
    @property
    def tenant_id(self) -> Hashable: ...

    @property
    def webhook_id(self) -> Hashable: ...


J = TypeVar("J", bound=Schedulable)


@dataclass(frozen=True)
class Limits:
    senders: int
    per_tenant: int
    per_endpoint: int

    def __post_init__(self) -> None:
        if min(self.senders, self.per_tenant, self.per_endpoint) < 1:
            raise ValueError(f"every limit must be at least 1: {self}")


class FairScheduler(Generic[J]):
    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._lanes: dict[Hashable, deque[J]] = defaultdict(deque)  # endpoint -> waiting jobs
        self._tenant_of: dict[Hashable, Hashable] = {}  # endpoint -> tenant
        self._running_endpoint: dict[Hashable, int] = defaultdict(int)
        self._running_tenant: dict[Hashable, int] = defaultdict(int)
        self._running = 0
        # Endpoints that have a waiting job and room in their lane, per tenant, and the
        # tenants that have such an endpoint and room in their share; both in the order
        # they are to be served (least recently served first).
        self._ready_endpoints: dict[Hashable, OrderedDict[Hashable, None]] = defaultdict(
            OrderedDict
        )
        self._ready_tenants: OrderedDict[Hashable, None] = OrderedDict()

    # -- what the engine calls --------------------------------------------------------------
    @property
    def limits(self) -> Limits:
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        """New caps apply to jobs started from now on; jobs running are not stopped."""
        if limits == self._limits:
            return
        self._limits = limits
        for endpoint in list(self._tenant_of):
            self._refresh(endpoint)

    def offer(self, job: J) -> None:
        """Queue `job` behind its endpoint's other waiting jobs."""
        self._tenant_of[job.webhook_id] = job.tenant_id
        self._lanes[job.webhook_id].append(job)
        self._refresh(job.webhook_id)

    def next(self) -> J | None:
        """The job to start now, counted as running; None if no job may start."""
        if self._running >= self._limits.senders or not self._ready_tenants:
            return None
        tenant = next(iter(self._ready_tenants))
        endpoints = self._ready_endpoints[tenant]
        endpoint = next(iter(endpoints))
        # Served: to the back of both rotations (re-entered by _refresh if still ready).
        del self._ready_tenants[tenant]
        del endpoints[endpoint]
        job = self._lanes[endpoint].popleft()
        self._running += 1
        self._running_tenant[tenant] += 1
        self._running_endpoint[endpoint] += 1
        self._refresh(endpoint)
        return job

    def done(self, job: J) -> None:
        """`job`, started by `next()`, has finished (whatever its outcome)."""
        endpoint, tenant = job.webhook_id, job.tenant_id
        if self._running_endpoint[endpoint] < 1:
            raise ValueError(f"{job!r} is not running")
        self._running -= 1
        self._running_tenant[tenant] -= 1
        self._running_endpoint[endpoint] -= 1
        self._refresh(endpoint)

    def drain(self) -> list[J]:
        """Take every waiting job out (to give back on shutdown); running ones stay."""
        jobs = [job for lane in self._lanes.values() for job in lane]
        for lane in self._lanes.values():
            lane.clear()
        for endpoint in list(self._tenant_of):
            self._refresh(endpoint)
        return jobs

    # -- what the engine observes -----------------------------------------------------------
    def waiting(self, endpoint: Hashable) -> int:
        return len(self._lanes.get(endpoint, ()))

    def running(self, *, tenant: Hashable | None = None, endpoint: Hashable | None = None) -> int:
        if endpoint is not None:
            return self._running_endpoint.get(endpoint, 0)
        if tenant is not None:
            return self._running_tenant.get(tenant, 0)
        return self._running

    # -- bookkeeping ------------------------------------------------------------------------
    def _refresh(self, endpoint: Hashable) -> None:
        """Re-derive whether `endpoint` and its tenant may be served; drop what is empty."""
        tenant = self._tenant_of[endpoint]
        endpoints = self._ready_endpoints[tenant]
        lane_ready = (
            bool(self._lanes[endpoint])
            and self._running_endpoint[endpoint] < self._limits.per_endpoint
        )
        if lane_ready:
            endpoints.setdefault(endpoint)
        else:
            endpoints.pop(endpoint, None)
        tenant_ready = bool(endpoints) and self._running_tenant[tenant] < self._limits.per_tenant
        if tenant_ready:
            self._ready_tenants.setdefault(tenant)
        else:
            self._ready_tenants.pop(tenant, None)
        if not self._lanes[endpoint] and not self._running_endpoint[endpoint]:
            # Forget idle endpoints and tenants, so the maps track only live work.
            del self._lanes[endpoint], self._running_endpoint[endpoint]
            del self._tenant_of[endpoint]
            if not endpoints:
                del self._ready_endpoints[tenant]
            if not self._running_tenant[tenant]:
                del self._running_tenant[tenant]
