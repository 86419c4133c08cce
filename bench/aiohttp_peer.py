"""bench/aiohttp_peer.py: the seed's pattern, as a peer in bench/throughput.

One aiohttp ClientSession over a TCPConnector(limit=concurrency), an asyncio.Semaphore around each
call and asyncio.gather over all of them; each answer's body is JSON-decoded and its `choices`
checked, as the Node clients do. bench/throughput runs it as a child process (one per cell):

    python3 bench/aiohttp_peer.py --url http://127.0.0.1:PORT --concurrency 200 --requests 6000

It first sends max(--warmup, concurrency) requests (warm-up: open the connections), then times `--requests` and
prints one JSON line: {"rps": ..., "cpuMicros": ..., "failed": ...}. CPU is this process's user and
system time over the timed requests (time.process_time), in microseconds per request.

Needs aiohttp: `apt-get install python3-aiohttp` (Debian/Ubuntu) or `pip install aiohttp`.
"""
import argparse
import asyncio
import json
import time

import aiohttp

BODY = {
    "model": "gpt-4.1-mini",
    "messages": [
        {"role": "system", "content": "You are a support assistant for an online shop. Answer in one sentence."},
        {"role": "user", "content": "Where is my order 12345? It was due on Monday."},
    ],
    "max_tokens": 64,
}
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


async def run(session: aiohttp.ClientSession, url: str, concurrency: int, n: int) -> int:
    semaphore = asyncio.Semaphore(concurrency)
    data = json.dumps(BODY)
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with semaphore:
            try:
                async with session.post(url, data=data, headers=HEADERS) as response:
                    answer = json.loads(await response.read())
                    if response.status != 200 or "choices" not in answer:
                        failed += 1
            except Exception:
                failed += 1

    await asyncio.gather(*(one() for _ in range(n)))
    return failed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the mock server's base URL")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=0, help="requests before the timed ones (at least --concurrency)")
    args = parser.parse_args()
    url = args.url.rstrip("/") + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await run(session, url, args.concurrency, max(args.concurrency, args.warmup))  # warm-up
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        failed = await run(session, url, args.concurrency, args.requests)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    print(json.dumps({"rps": args.requests / elapsed, "cpuMicros": cpu * 1e6 / args.requests, "failed": failed}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
