"""A real local HTTP server that plays the YouTube Data API v3 and the thumbnail host.

Used by tests, the benchmark and the offline demo. Start it as a context manager:

    with YouTubeSimulator(SimulatorConfig(latency=0.05)) as sim:
        api_url = sim.url + "/youtube/v3"; thumbnail_url = sim.url

Replace `sim.config` at any time (e.g. `sim.config = replace(sim.config, epoch=1)`); each
request reads one consistent snapshot. `sim.counters` holds thread-safe request counters.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import random
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.simulator.config import SimulatorConfig, SimulatorCounters
from worker.simulator.partial import MaskError, parse_mask, select
from worker.simulator.thumbs import serve_thumbnail
from worker.simulator.truth import api_error, api_error_in_details, is_youtube_id, video_resource
from worker.simulator.votes import VoteWindow, votes_reply

KNOWN_PARTS = frozenset({"snippet", "contentDetails", "statistics"})
MAX_IDS = 50
FOREIGN_ID = "zzzzzzzzzzz"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    simulator: YouTubeSimulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients that hang up early (timeouts, size caps) are expected here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # Idle keep-alive connections are closed after this, so handler threads never pile up.
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the simulator's callers count requests instead."""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle plus delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.simulator.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.simulator.track(self.connection, add=False)
        super().finish()

    def do_GET(self) -> None:
        sim = self.server.simulator
        config = sim.config
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/youtube/v3/videos":
            self._videos(sim, config, query)
        elif parts.path.startswith("/vi/"):
            sim.pause(config.thumb_latency)
            sim.counters.add("thumb_requests")
            if "X-Goog-Api-Key" in self.headers or "key" in query:
                sim.counters.add("key_to_thumb_host_requests")
            reply = serve_thumbnail(config, parts.path, self.headers, sim.counters)
            self.send(reply.status, reply.body, reply.headers)
        elif parts.path == "/votes":
            sim.counters.add("votes_requests")
            status, body, headers = votes_reply(config, sim.votes, query.get("videoId", [""])[0])
            if status == 429:
                sim.counters.add("votes_429")
            self.send_json(status, body, headers)
        else:
            self.send(404, b"not found", {"Content-Type": "text/plain"})

    def send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        """Send one complete response with a Content-Length, keeping the connection open."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload: dict[str, Any], extra: Mapping[str, str]) -> None:
        """Send a JSON body the way Google APIs do."""
        headers = {"Content-Type": "application/json; charset=UTF-8", **extra}
        self.send(status, json.dumps(payload).encode(), headers)

    def drop(self) -> None:
        """Close the connection without sending a response."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _videos(self, sim: YouTubeSimulator, config: SimulatorConfig,
                query: dict[str, list[str]]) -> None:
        counters = sim.counters
        counters.add("api_requests")
        counters.record_request(query, self.headers)
        sim.pause(config.latency)
        status, payload, headers = self._videos_reply(sim, config, query)
        if status == 0:
            counters.add("api_failed")
            self.drop()
            return
        counters.add("api_ok" if status == 200 else "api_failed")
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json; charset=UTF-8", **headers}
        # Google compresses only for a client that asks in both headers.
        if ("gzip" in self.headers.get("Accept-Encoding", "")
                and "gzip" in self.headers.get("User-Agent", "")):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        counters.add("api_body_bytes", len(body))
        self.send(status, body, headers)

    def _videos_reply(self, sim: YouTubeSimulator, config: SimulatorConfig,
                      query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        counters = sim.counters
        url_key = query.get("key", [""])[0]
        if url_key:
            counters.add("key_in_url_requests")
        key = self.headers.get("X-Goog-Api-Key") or url_key
        if not key:
            return api_error(403, "forbidden")
        if key not in config.api_keys:
            return api_error(400, "keyInvalid")
        if not counters.spend_unit(config.quota_units):
            return api_error(403, "quotaExceeded")
        ids = [i for raw in query.get("id", []) for i in raw.split(",") if i]
        counters.record_batch(ids)
        parts = frozenset(p for raw in query.get("part", []) for p in raw.split(",") if p)
        if not parts or not parts <= KNOWN_PARTS:
            return api_error(400, "missingRequiredParameter")
        if len(ids) > MAX_IDS:
            return api_error(400, "invalidFilters")
        if ids and "maxResults" in query:
            return api_error(400, "unsupportedParameter")  # the reference: not with `id`
        try:
            mask = parse_mask(query["fields"][0]) if "fields" in query else None
        except MaskError:
            return api_error(400, "invalidFields")
        fault = sim.draw_fault(config)
        if fault in ("drop", "slow"):
            if fault == "slow":
                sim.pause(config.slow_seconds)
            return 0, None, {}
        if fault in ("500", "503", "429"):
            reason = {"500": "backendError", "503": "backendError", "429": "rateLimitExceeded"}
            extra = {"Retry-After": f"{config.retry_after:g}"} if fault == "429" else {}
            status, payload, _ = api_error(int(fault), reason[fault])
            return status, payload, extra
        if fault == "429_details":
            return api_error_in_details(429, "RATE_LIMIT_EXCEEDED")
        if fault == "quota_details":
            return api_error_in_details(403, "quotaExceeded")
        if fault == "malformed":
            return 200, b'{"kind": "youtube#videoListResponse", "items": [{"id": ', {}
        return 200, select(_list_response(ids, parts, config, fault), mask), {}


def _list_response(ids: list[str], parts: frozenset[str], config: SimulatorConfig,
                   fault: str | None) -> dict[str, Any]:
    wanted = [i for i in dict.fromkeys(ids) if is_youtube_id(i) and i not in config.deleted]
    items = [video_resource(i, config.epoch, parts) for i in wanted]
    if fault == "foreign_item":
        items.append(video_resource(FOREIGN_ID, config.epoch, parts))
    if fault == "bad_stat" and items and "statistics" in parts:
        items[0]["statistics"] = {**items[0]["statistics"], "viewCount": "12a"}
    return {
        "kind": "youtube#videoListResponse",
        "etag": f"sim-{config.epoch}-{len(items)}",
        "items": items,
        "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
    }


class YouTubeSimulator:
    """The simulator's server, its config and counters; a context manager that starts and stops."""

    def __init__(self, config: SimulatorConfig | None = None, *, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        self._host = host
        self._config = config or SimulatorConfig()
        self._port = port
        self._lock = threading.Lock()
        self._rng = random.Random(self._config.seed)
        self._rng_seed = self._config.seed
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.counters = SimulatorCounters()
        self.votes = VoteWindow()

    @property
    def config(self) -> SimulatorConfig:
        """The current behaviour."""
        with self._lock:
            return self._config

    @config.setter
    def config(self, value: SimulatorConfig) -> None:
        with self._lock:
            self._config = value
            if value.seed != self._rng_seed:
                self._rng, self._rng_seed = random.Random(value.seed), value.seed

    @property
    def url(self) -> str:
        """Base URL such as http://127.0.0.1:PORT (the API lives under /youtube/v3)."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> YouTubeSimulator:
        """Bind the host (loopback unless told otherwise) and serve in a daemon thread."""
        server = _Server((self._host, self._port), _Handler)
        server.simulator = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="youtube-simulator",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close every open connection."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> YouTubeSimulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember open connections so `stop` can close them."""
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking at once when the simulator stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def draw_fault(self, config: SimulatorConfig) -> str | None:
        """The fault this request suffers, drawn from the seeded generator, or None."""
        with self._lock:
            if not config.faults or self._rng.random() >= config.fault_rate:
                return None
            return self._rng.choice(config.faults)


def main(argv: list[str] | None = None) -> None:
    """Run the simulator in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m worker.simulator", description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--quota", type=int, default=None)
    parser.add_argument("--key", action="append", default=None, help="accepted API key")
    args = parser.parse_args(argv)
    config = SimulatorConfig(latency=args.latency, fault_rate=args.fault_rate,
                             quota_units=args.quota,
                             api_keys=frozenset(args.key or ["demo-key"]))
    with YouTubeSimulator(config, port=args.port, host=args.host) as sim:
        print(f"YouTube simulator at {sim.url} (API {sim.url}/youtube/v3); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
