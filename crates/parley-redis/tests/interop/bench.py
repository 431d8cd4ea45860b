"""channels_redis doing what examples/redis_bench.rs does, for the side-by-side figures in
docs/benchmarks.md. Usage: bench.py <redis-url> <prefix>. Prints one JSON object."""

import asyncio
import json
import sys
import time

from channels_redis.core import RedisChannelLayer

URL, PREFIX = sys.argv[1], sys.argv[2]
MESSAGE = {"type": "chat.message", "text": "hello, benchmark", "room": 42}
GROUP_SIZES = [(1, 2000), (100, 300), (10000, 10)]
SENDS_ONE, SENDS_EACH_64 = 5000, 200


def layer():
    return RedisChannelLayer(hosts=[URL], prefix=PREFIX, capacity=1_000_000)


async def group_send(size, rounds):
    cl = layer()
    for i in range(size):
        await cl.group_add("bench-group", f"bench.m{i}")
    start = time.perf_counter()
    for _ in range(rounds):
        await cl.group_send("bench-group", MESSAGE)
    elapsed = time.perf_counter() - start
    await cl.flush()
    return rounds / elapsed


async def sends(tasks, each):
    cl = layer()

    async def one(t):
        for _ in range(each):
            await cl.send(f"bench.s{t}", MESSAGE)

    start = time.perf_counter()
    await asyncio.gather(*(one(t) for t in range(tasks)))
    elapsed = time.perf_counter() - start
    await cl.flush()
    return tasks * each / elapsed


async def main():
    out = {}
    for size, rounds in GROUP_SIZES:
        out[f"group_send_{size}"] = await group_send(size, rounds)
    out["sends_1"] = await sends(1, SENDS_ONE)
    out["sends_64"] = await sends(64, SENDS_EACH_64)
    print(json.dumps(out))


asyncio.run(main())
