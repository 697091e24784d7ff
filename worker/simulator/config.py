"""What the simulator is told (SimulatorConfig) and what it has seen (SimulatorCounters)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

API_FAULTS = ("500", "503", "429", "drop", "slow", "malformed", "foreign_item", "bad_stat",
              "429_details", "quota_details")
THUMB_FAULTS = ("html", "huge", "truncated", "redirect", "redirect_loop", "503")


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated API behaves; replace the whole value to change it mid-run."""

    api_keys: frozenset[str] = frozenset({"demo-key"})
    latency: float = 0.0
    fault_rate: float = 0.0
    faults: tuple[str, ...] = ("500", "503", "429", "drop")
    retry_after: float = 1.0
    slow_seconds: float = 3.0
    seed: int = 0
    quota_units: int | None = None
    deleted: frozenset[str] = frozenset()
    epoch: int = 0
    thumb_missing_sizes: frozenset[str] = frozenset()
    thumb_latency: float = 0.0
    thumb_fault: str | None = None
    votes_per_minute: int | None = None
    votes_window: float = 60.0
    votes_deleted: frozenset[str] = frozenset()


@dataclass
class SimulatorCounters:
    """What the simulator has seen; update only through `add`/`record_batch`."""

    api_requests: int = 0
    api_ok: int = 0
    api_failed: int = 0
    ids_requested: list[list[str]] = field(default_factory=list)
    # Each videos.list request's query ({name: value}) and headers, as the simulator saw them.
    api_queries: list[dict[str, str]] = field(default_factory=list)
    api_headers: list[dict[str, str]] = field(default_factory=list)
    api_body_bytes: int = 0
    thumb_requests: int = 0
    thumb_304: int = 0
    key_in_url_requests: int = 0
    key_to_thumb_host_requests: int = 0
    units_used: int = 0
    votes_requests: int = 0
    votes_429: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Add `amount` to the counter `name`."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def record_batch(self, ids: list[str]) -> None:
        """Remember the ids of one videos.list request."""
        with self._lock:
            self.ids_requested.append(ids)

    def record_request(self, query: Mapping[str, list[str]], headers: Any) -> None:
        """Remember one videos.list request's query and headers (the key's value withheld)."""
        seen = {name: ("<key>" if name.lower() == "x-goog-api-key" else value)
                for name, value in headers.items()}
        with self._lock:
            self.api_queries.append({name: ",".join(v) for name, v in query.items()})
            self.api_headers.append(seen)

    def spend_unit(self, quota: int | None) -> bool:
        """Spend one quota unit; False when the quota is already used up."""
        with self._lock:
            if quota is not None and self.units_used >= quota:
                return False
            self.units_used += 1
            return True
