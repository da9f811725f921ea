"""Name lookups on threads of their own, shared out between tenants.

A lookup blocks a thread (getaddrinfo cannot be interrupted), and a thread whose lookup
hangs stays busy after the attempt that started it gave up, until the system resolver
gives up too. So a tenant's lookups are counted per thread, from the moment the thread
takes the lookup until it is free again, not per attempt: a tenant may have at most its
share of the pool's threads busy, and waits for one of its own to come free beyond that.
Other tenants' lookups never wait behind its hanging ones for more than the rest of the
pool.

Whose lookup it is comes from `lookup_owner`, which the sender sets for the request it
sends (a context variable follows the request into the tasks the HTTP client starts).
"""

import asyncio
import contextlib
import socket
from collections import defaultdict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

lookup_owner: ContextVar[Hashable] = ContextVar("lookup_owner", default=None)

AddressInfo = list[tuple[Any, ...]]


class LookupPool:
    def __init__(
        self,
        *,
        threads: int,
        per_owner: Callable[[], int],
        getaddrinfo: Callable[..., AddressInfo] | None = None,
    ) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, threads), thread_name_prefix="ctrlplane-resolve"
        )
        self._per_owner = per_owner
        self._getaddrinfo = getaddrinfo
        self._busy: dict[Hashable, int] = defaultdict(int)
        self._freed: asyncio.Condition | None = None  # made on the loop that resolves

    def busy(self, owner: Hashable) -> int:
        return self._busy.get(owner, 0)

    async def getaddrinfo(self, host: str, port: int, *, family: int) -> AddressInfo:
        """socket.getaddrinfo(host, port, family, SOCK_STREAM) on one of the pool's threads."""
        loop = asyncio.get_running_loop()
        if self._freed is None:
            self._freed = asyncio.Condition()
        owner = lookup_owner.get()
        async with self._freed:
            await self._freed.wait_for(lambda: self._busy[owner] < max(1, self._per_owner()))
            self._busy[owner] += 1
        # Read at call time, so a patched socket.getaddrinfo (the tests' network rule) holds.
        lookup = self._getaddrinfo or socket.getaddrinfo
        try:
            work: Future[AddressInfo] = self._executor.submit(
                lookup, host, port, family=family, type=socket.SOCK_STREAM
            )
        except RuntimeError:  # the pool is shut down
            self._release(owner)
            raise
        # Counted until the thread is done with it (or it never started), not until the
        # caller stops waiting.
        work.add_done_callback(lambda _: self._released_from_thread(loop, owner))
        return await asyncio.wrap_future(work)

    def _released_from_thread(self, loop: asyncio.AbstractEventLoop, owner: Hashable) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing waits any more
            loop.call_soon_threadsafe(self._release_soon, owner)

    def _release_soon(self, owner: Hashable) -> None:
        asyncio.get_running_loop().create_task(self._notify_released(owner))

    async def _notify_released(self, owner: Hashable) -> None:
        self._release(owner)
        assert self._freed is not None
        async with self._freed:
            self._freed.notify_all()

    def _release(self, owner: Hashable) -> None:
        self._busy[owner] -= 1
        if not self._busy[owner]:
            del self._busy[owner]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
