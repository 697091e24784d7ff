"""Bytes on the wire per videos.list call of 50 ids: the full parts, the `fields=` mask, and gzip.

Each call goes through the real client against the simulator, which counts the body bytes it
sends; the previous version's call (full snippet/contentDetails/statistics, no gzip asked) is
the first row.

    python bench/request_bytes.py [--ids 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import httpx

from worker.api.fields import request_mask
from worker.api.http import make_http_client
from worker.api.youtube import ApiMeter, YouTubeClient
from worker.settings import Settings
from worker.simulator.config import SimulatorConfig
from worker.simulator.server import YouTubeSimulator

KEY = "request-bytes-key"


def call_bytes(sim: YouTubeSimulator, ids: list[str], fields: str | None, gzip: bool) -> int:
    """The body bytes the simulator sent for one videos.list call of `ids`."""
    async def main() -> None:
        plain = {"Accept-Encoding": "identity"}
        http = make_http_client(Settings()) if gzip else httpx.AsyncClient(headers=plain)
        async with http:
            client = YouTubeClient(http, api_url=sim.url + "/youtube/v3", api_key=KEY, attempts=2,
                                   max_wait=1.0, concurrency=1, meter=ApiMeter(), fields=fields)
            await client.list_videos(ids)
    before = sim.counters.api_body_bytes
    asyncio.run(main())
    return sim.counters.api_body_bytes - before


def main(argv: list[str] | None = None) -> int:
    """Print a Markdown table of the bytes per call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=50)
    args = parser.parse_args(argv)
    ids = [f"{n:011d}"[-11:].replace("0", "A") for n in range(args.ids)]
    mask = request_mask(Settings().api_paths)
    with YouTubeSimulator(SimulatorConfig(api_keys=frozenset({KEY}))) as sim:
        rows = [("full parts, no gzip (the previous version)", call_bytes(sim, ids, None, gzip=False)),
                (f"fields={mask}, no gzip", call_bytes(sim, ids, mask, gzip=False)),
                ("the mask + gzip (Accept-Encoding, gzip in User-Agent)",
                 call_bytes(sim, ids, mask, gzip=True))]
    print(f"| videos.list of {args.ids} ids | bytes | vs the previous version |\n|---|---:|---:|")
    for name, size in rows:
        print(f"| {name} | {size:,} | {rows[0][1] / size:.1f}x fewer |" if size != rows[0][1]
              else f"| {name} | {size:,} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
