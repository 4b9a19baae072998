"""Admission control, on the event loop (no locks needed): who may hold memory and workers.

- BodyMemory: bytes of request bodies held at once, counted as they arrive (uploads in progress
  and bodies waiting in the queue). A trickling upload holds only what it has sent.
- Gate: at most `workers` jobs run and `queue` more wait, first come first served. A request
  is admitted only once its body is complete: a slow upload never holds a place.
- Draining (after SIGTERM): the gate admits nobody, the waiters are told at once (503), the
  running jobs finish.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque


class Draining(Exception):
    """The server is shutting down: answer 503 with Retry-After."""


class BodyMemory:
    """A byte budget shared by every request body in memory."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.uploads = 0  # bodies being received now

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


class Gate:
    """Bounded concurrency with a bounded queue; refuses at once when full or draining."""

    def __init__(self, workers: int, queue: int):
        self.workers = workers
        self.capacity = workers + queue
        self.admitted = 0  # waiting or running
        self.running = 0
        self._waiters: deque[asyncio.Future] = deque()
        self.mean_job_s = 0.5  # moving average of a job's duration, for Retry-After
        self.draining = asyncio.Event()
        self.grace_s = 30.0  # set by the server; Retry-After during the drain

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def try_admit(self) -> bool:
        if self.draining.is_set() or self.admitted >= self.capacity:
            return False
        self.admitted += 1
        return True

    def leave(self) -> None:
        self.admitted -= 1

    async def acquire(self) -> None:
        """A worker slot (wait in line); Draining if the server starts shutting down meanwhile."""
        if self.draining.is_set():
            raise Draining
        if self.running < self.workers and not self._waiters:
            self.running += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # the slot was handed over just as we gave up: pass it on
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next in line
                return
        self.running -= 1

    def drain(self) -> None:
        """Admit nobody from now on; everyone waiting in line is refused (Draining)."""
        self.draining.set()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(Draining())

    async def wait_idle(self, timeout: float) -> bool:
        """True once no job runs, False if some still run after `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.running > 0:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def observe(self, seconds: float) -> None:
        self.mean_job_s = 0.8 * self.mean_job_s + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (1..60), or the grace period when draining."""
        if self.draining.is_set():
            return max(1, math.ceil(self.grace_s))
        return int(min(60, max(1, math.ceil(self.mean_job_s * self.capacity / self.workers))))
