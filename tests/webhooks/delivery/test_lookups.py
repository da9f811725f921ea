"""webhooks/delivery/lookups.py: one tenant's hanging lookups keep to its share of the
pool's threads, counted until each thread is free again."""

import asyncio
import socket
import threading

from webhooks.delivery.lookups import LookupPool, lookup_owner
from webhooks.delivery.transport import PolicyResolver
from webhooks.targets import NetworkPolicy


class FakeResolver:
    """Names starting with `hang` block until released; others answer at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.hanging = threading.Semaphore(0)  # one per hanging lookup that started
        self.started: list[str] = []

    def __call__(self, host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        self.started.append(host)
        if host.startswith("hang"):
            self.hanging.release()
            assert self.release.wait(30)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


async def lookup(pool: LookupPool, owner: str, host: str) -> object:
    lookup_owner.set(owner)  # as the sender does, in the send's own task
    return await pool.getaddrinfo(host, 80, family=socket.AF_INET)


def test_a_tenants_abandoned_lookups_still_count_and_others_go_ahead():
    resolver = FakeResolver()
    pool = LookupPool(threads=4, per_owner=lambda: 2, getaddrinfo=resolver)

    async def scenario() -> None:
        attempts = [asyncio.create_task(lookup(pool, "A", f"hang{n}")) for n in range(2)]
        for _ in attempts:
            assert await asyncio.to_thread(resolver.hanging.acquire, timeout=10)
        # A's attempts time out and give up; their threads are still stuck in the lookup.
        for attempt in attempts:
            attempt.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)
        assert pool.busy("A") == 2

        third = asyncio.create_task(lookup(pool, "A", "hang-third"))
        other = await asyncio.wait_for(lookup(pool, "B", "fine.test"), 10)
        assert other  # B's lookup had a thread at once
        assert "hang-third" not in resolver.started  # A waits for a thread of its own share

        resolver.release.set()
        await asyncio.wait_for(third, 10)
        assert pool.busy("A") == 0

    try:
        asyncio.run(scenario())
    finally:
        resolver.release.set()
        pool.shutdown()


def test_the_policy_resolver_resolves_on_the_pool():
    pool = LookupPool(threads=1, per_owner=lambda: 1)
    resolver = PolicyResolver(NetworkPolicy.from_names(["loopback"]), lookups=pool)
    try:
        results = asyncio.run(resolver.resolve("localhost", 443))
    finally:
        pool.shutdown()
    assert results
    assert all(r["host"] in ("127.0.0.1", "::1") for r in results)
