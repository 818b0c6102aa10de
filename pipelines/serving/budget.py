"""A memory budget the app never crosses by its own choice.

The startup models are always there. What a visitor can add on top (another SD variant, the
PyTorch worker with its baselines) is *optional*: before one loads, the budget makes room by
releasing the least recently used optional ones (dropping a variant, stopping the worker); if
that is still not enough, the request gets a sentence instead of the app running out of memory.
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core.memory import return_freed_memory

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
_uses = itertools.count()
"""Orders holders by last use."""


def weights_mb(folder: str | Path | None) -> float | None:
    """Megabytes of weights in a local folder (what loading them in fp32 costs, about); None if not local."""
    if folder is None or not Path(folder).is_dir():
        return None
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.suffix in WEIGHT_SUFFIXES) / 2**20


@dataclass
class Holder:
    name: str
    release: Callable[[], None]
    size_mb: Callable[[], float]
    last_used: int = field(default_factory=lambda: next(_uses))


class MemoryBudget:
    """`limit_mb` for the app's resident memory (this process and the PyTorch worker, as `used()` measures)."""

    def __init__(self, limit_mb: float, used: Callable[[], float]):
        self.limit_mb = limit_mb
        self._used = used
        self._holders: dict[str, Holder] = {}
        self._reservations: dict[int, float] = {}
        self._lock = threading.RLock()

    def used_mb(self) -> float:
        return self._used()

    def holding(self) -> list[str]:
        """The optional models loaded now, least recently used first."""
        with self._lock:
            return [h.name for h in sorted(self._holders.values(), key=lambda h: h.last_used)]

    def hold(self, name: str, release: Callable[[], None], size_mb: Callable[[], float]) -> None:
        """`name` is loaded and optional: `release()` frees about `size_mb()` when the room is needed.
        Holding it again marks it used now."""
        with self._lock:
            holder = self._holders.get(name)
            if holder is None:
                self._holders[name] = Holder(name, release, size_mb)
            else:
                holder.last_used = next(_uses)

    def forget(self, name: str) -> None:
        """`name` went away by itself (the worker exited when idle). Takes no lock: it is called from
        under other locks (the worker's), and releasing from `make_room` takes those."""
        self._holders.pop(name, None)

    def reserved_mb(self) -> float:
        """What loads admitted but not finished yet were told they may take."""
        with self._lock:
            return sum(self._reservations.values())

    def make_room(
        self, need_mb: float, what: str, keep: str | None = None, instead: str = "Use the OpenVINO backend."
    ) -> Reservation:
        """Admit a load of about `need_mb`: release least recently used optional models until it fits beside
        what is in use and what other admitted loads reserved, then reserve it until the returned
        `Reservation` is released (`with budget.make_room(...):` around the load). ValueError (ending with
        `instead`) if it cannot fit. `keep` is never released (the model asking, when it is partly loaded).

        Two loads admitted at once cannot both pass against the same resident memory: the second counts the
        first's reservation, which stays until the first load ends (its memory is then in `used`)."""

        def refuse(used: float) -> ValueError:
            return ValueError(
                f"{what} needs about {need_mb / 1024:.1f} GB more memory, which does not fit in this server's "
                f"budget of {self.limit_mb / 1024:.1f} GB ({used / 1024:.1f} GB in use or reserved, most of it by "
                f"the models every tab needs). {instead}"
            )

        with self._lock:
            in_use = lambda: self._used() + sum(self._reservations.values())
            candidates = sorted((h for h in self._holders.values() if h.name != keep), key=lambda h: h.last_used)
            used = in_use()
            if used - sum(h.size_mb() for h in candidates) + need_mb > self.limit_mb:  # nothing released in vain
                raise refuse(used)
            while candidates and (used := in_use()) + need_mb > self.limit_mb:
                victim = candidates.pop(0)
                del self._holders[victim.name]
                logger.info(
                    "memory budget: releasing %s (%.0f MB in use or reserved, %.0f MB needed, budget %.0f MB)",
                    victim.name,
                    used,
                    need_mb,
                    self.limit_mb,
                )
                victim.release()
                gc.collect()
                return_freed_memory()
            if (used := in_use()) + need_mb > self.limit_mb:  # what was released freed less than it held
                raise refuse(used)
            reservation = Reservation(self, next(_uses), need_mb)
            self._reservations[reservation.key] = need_mb
            return reservation

    def _release(self, key: int) -> None:
        with self._lock:
            self._reservations.pop(key, None)


@dataclass
class Reservation:
    """Memory a load was admitted with; released (once) when the load ends, however it ends."""

    budget: MemoryBudget
    key: int
    mb: float

    def release(self) -> None:
        self.budget._release(self.key)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
