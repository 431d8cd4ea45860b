"""The Python side of parley-redis's interop tests: the real channels_redis, driven by JSON
lines on stdin, answering JSON lines on stdout.

Usage: peer.py '<layer kwargs as JSON>'   (hosts, prefix, capacity, expiry, ...)
Requests:  {"op": "new_channel"} | {"op": "send", "channel": c, "message": m}
           | {"op": "receive", "channel": c, "timeout": s} | {"op": "group_add", "group": g,
           "channel": c} | {"op": "group_discard", ...} | {"op": "group_send", "group": g,
           "message": m} | {"op": "fill", "channel": c, "message": m, "limit": n}
Answers:   {"ok": result} or {"error": "<exception class>: <text>"}
"""

import asyncio
import json
import sys

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer


def jsonable(value):
    """msgpack gives bytes for binary values; the Rust side sees them as lists of ints."""
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


async def handle(layer, req):
    op = req["op"]
    if op == "new_channel":
        return await layer.new_channel()
    if op == "send":
        await layer.send(req["channel"], req["message"])
        return True
    if op == "fill":
        # Send until ChannelFull; answer how many were accepted.
        sent = 0
        while sent < req["limit"]:
            try:
                await layer.send(req["channel"], dict(req["message"], seq=sent))
            except ChannelFull:
                break
            sent += 1
        return sent
    if op == "receive":
        try:
            message = await asyncio.wait_for(layer.receive(req["channel"]), req["timeout"])
        except asyncio.TimeoutError:
            return {"timeout": True}
        return {"message": jsonable(message)}
    if op == "group_add":
        await layer.group_add(req["group"], req["channel"])
        return True
    if op == "group_discard":
        await layer.group_discard(req["group"], req["channel"])
        return True
    if op == "group_send":
        await layer.group_send(req["group"], req["message"])
        return True
    raise ValueError(f"unknown op {op!r}")


async def main():
    layer = RedisChannelLayer(**json.loads(sys.argv[1]))
    loop = asyncio.get_running_loop()
    print(json.dumps({"ok": "ready"}), flush=True)
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        req = json.loads(line)
        try:
            answer = {"ok": await handle(layer, req)}
        except Exception as error:  # reported to the Rust test, which decides
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)
    await layer.close_pools()


asyncio.run(main())
