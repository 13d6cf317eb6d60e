"""Event-loop micro-benchmarks: PyLoop vs uvloop vs stdlib asyncio in the same run.

    .venv/bin/python bench/bench_loop.py [--quick] [--no-write]

Each benchmark runs on a fresh loop of each kind; the figure is the best of several repeats
(operations per second, higher is better). The table goes to stdout and, unless --no-write,
into bench/RESULTS.md between the loop markers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from data_bridge import pyloop  # noqa: E402

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in requirements/bench.txt
    uvloop = None

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "PyLoop": pyloop.new_event_loop,
    "asyncio": asyncio.SelectorEventLoop,
}
if uvloop is not None:
    LOOPS["uvloop"] = uvloop.new_event_loop
ORDER = ["PyLoop", "uvloop", "asyncio"]


def bench_call_soon(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """n callbacks scheduled with call_soon from a running callback, then run."""
    count = 0

    def cb() -> None:
        nonlocal count
        count += 1

    def start() -> None:
        call_soon = loop.call_soon
        for _ in range(n):
            call_soon(cb)
        call_soon(loop.stop)

    loop.call_soon(start)
    t0 = time.perf_counter()
    loop.run_forever()
    dt = time.perf_counter() - t0
    assert count == n
    return n / dt


def bench_call_soon_chain(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """One callback rescheduling itself n times: one loop iteration per callback."""
    left = n

    def cb() -> None:
        nonlocal left
        left -= 1
        if left:
            loop.call_soon(cb)
        else:
            loop.stop()

    loop.call_soon(cb)
    t0 = time.perf_counter()
    loop.run_forever()
    return n / (time.perf_counter() - t0)


def bench_call_later(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """n timers with random sub-millisecond delays, every other one cancelled."""
    rnd = random.Random(1)
    fired = 0

    def cb() -> None:
        nonlocal fired
        fired += 1

    def start() -> None:
        handles = [loop.call_later(rnd.random() * 0.001, cb) for _ in range(n)]
        for h in handles[::2]:
            h.cancel()
        loop.call_later(0.002, loop.stop)

    loop.call_soon(start)
    t0 = time.perf_counter()
    loop.run_forever()
    dt = time.perf_counter() - t0
    assert fired == n - (n + 1) // 2
    return n / dt


def bench_ping_pong(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """10 tasks each awaiting asyncio.sleep(0) n/10 times (task step round trips)."""
    per = n // 10

    async def worker() -> None:
        for _ in range(per):
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(10)))

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return per * 10 / (time.perf_counter() - t0)


def bench_task_create(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """Create tasks (batches of 100) whose coroutine returns at once, and await them."""

    async def nop() -> int:
        return 1

    async def main() -> None:
        for _ in range(n // 100):
            batch = [loop.create_task(nop()) for _ in range(100)]
            for task in batch:
                await task

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return n // 100 * 100 / (time.perf_counter() - t0)


def bench_future_roundtrip(loop: asyncio.AbstractEventLoop, n: int) -> float:
    """Create a future, resolve it from call_soon and await it, n times."""

    async def main() -> None:
        for _ in range(n):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return n / (time.perf_counter() - t0)


class _EchoServer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


class _EchoClient(asyncio.Protocol):
    def __init__(self, msg: bytes, rounds: int, done: asyncio.Future[None]) -> None:
        self.msg = msg
        self.rounds = rounds
        self.done = done
        self.got = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.msg)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= len(self.msg):
            self.got -= len(self.msg)
            self.rounds -= 1
            if self.rounds == 0:
                self.done.set_result(None)
            else:
                self.transport.write(self.msg)  # type: ignore[attr-defined]


def bench_tcp_echo(loop: asyncio.AbstractEventLoop, n: int, size: int = 1024) -> float:
    """4 clients echoing `size`-byte messages through a Protocol server on 127.0.0.1."""
    clients = 4
    rounds = max(1, n // clients)

    async def main() -> None:
        server = await loop.create_server(_EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        futs = []
        transports = []
        for _ in range(clients):
            done = loop.create_future()
            tr, _ = await loop.create_connection(
                lambda done=done: _EchoClient(b"x" * size, rounds, done), "127.0.0.1", port
            )
            transports.append(tr)
            futs.append(done)
        await asyncio.gather(*futs)
        for tr in transports:
            tr.close()
        server.close()
        await server.wait_closed()

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return rounds * clients / (time.perf_counter() - t0)


def bench_streams_echo(loop: asyncio.AbstractEventLoop, n: int, size: int = 1024) -> float:
    """4 clients echoing `size`-byte messages through asyncio streams (start_server and
    open_connection), the API most libraries use."""
    clients = 4
    rounds = max(1, n // clients)
    msg = b"x" * size

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.readexactly(size)
                writer.write(data)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(rounds):
            writer.write(msg)
            await writer.drain()
            await reader.readexactly(size)
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await asyncio.gather(*(client(port) for _ in range(clients)))
        server.close()
        await server.wait_closed()

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return rounds * clients / (time.perf_counter() - t0)


class _UDPEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


class _UDPClient(asyncio.DatagramProtocol):
    def __init__(self, msg: bytes, rounds: int, done: asyncio.Future[None]) -> None:
        self.msg = msg
        self.rounds = rounds
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.sendto(self.msg)  # type: ignore[attr-defined]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.rounds -= 1
        if self.rounds == 0:
            self.done.set_result(None)
        else:
            self.transport.sendto(self.msg)  # type: ignore[attr-defined]


def bench_udp_echo(loop: asyncio.AbstractEventLoop, n: int, size: int = 512) -> float:
    """4 clients echoing `size`-byte datagrams through a DatagramProtocol on 127.0.0.1
    (loopback does not drop datagrams at this rate; one in flight per client)."""
    clients = 4
    rounds = max(1, n // clients)

    async def main() -> None:
        server, _ = await loop.create_datagram_endpoint(_UDPEcho, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        futs, transports = [], []
        for _ in range(clients):
            done = loop.create_future()
            tr, _ = await loop.create_datagram_endpoint(
                lambda done=done: _UDPClient(b"x" * size, rounds, done), remote_addr=addr
            )
            transports.append(tr)
            futs.append(done)
        await asyncio.wait_for(asyncio.gather(*futs), 60)
        for tr in transports:
            tr.close()
        server.close()

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return rounds * clients / (time.perf_counter() - t0)


def tcp_supported() -> bool:
    lp = pyloop.new_event_loop()
    try:
        return type(lp).create_server is not asyncio.AbstractEventLoop.create_server
    finally:
        lp.close()


def run_interleaved(
    fn: Callable[..., float], kinds: list[str], n: int, repeats: int
) -> dict[str, float]:
    """Best of `repeats` per loop kind, alternating kinds so that load changes on a shared
    machine affect all of them alike."""
    best = dict.fromkeys(kinds, 0.0)
    for _ in range(repeats):
        for kind in kinds:
            lp = LOOPS[kind]()
            try:
                best[kind] = max(best[kind], fn(lp, n))
            finally:
                lp.close()
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0
    repeats = 3 if args.quick else 5
    benches: list[tuple[str, Callable[..., float], int]] = [
        ("call_soon (batch of 100k)", bench_call_soon, 100_000),
        ("call_soon chain (1 per iteration)", bench_call_soon_chain, 100_000),
        ("call_later + cancel churn", bench_call_later, 50_000),
        ("task ping-pong (sleep(0))", bench_ping_pong, 100_000),
        ("task create + await (batches of 100)", bench_task_create, 100_000),
        ("future create/resolve/await", bench_future_roundtrip, 50_000),
    ]
    if tcp_supported():
        benches += [
            ("TCP echo 1 KiB, 4 clients (round trips)", bench_tcp_echo, 20_000),
            (
                "TCP echo 64 KiB, 4 clients (round trips)",
                lambda lp, n: bench_tcp_echo(lp, n, 65536),
                2_000,
            ),
            ("streams echo 1 KiB, 4 clients (round trips)", bench_streams_echo, 20_000),
            (
                "streams echo 64 KiB, 4 clients (round trips)",
                lambda lp, n: bench_streams_echo(lp, n, 65536),
                2_000,
            ),
        ]
    benches.append(("UDP echo 512 B, 4 clients (round trips)", bench_udp_echo, 20_000))
    kinds = [k for k in ORDER if k in LOOPS]
    rows = []
    for title, fn, n in benches:
        n = max(200, int(n * scale))
        results = run_interleaved(fn, kinds, n, repeats)
        rows.append((title, results))
        cells = "  ".join(f"{k}={results[k]:,.0f}/s" for k in kinds)
        print(f"{title}: {cells}", flush=True)

    header = "| benchmark | " + " | ".join(f"{k} ops/s" for k in kinds)
    header += " | PyLoop / uvloop | PyLoop / asyncio |"
    lines = [header, "| --- |" + " ---: |" * (len(kinds) + 2)]
    for title, res in rows:
        vs_uv = res["PyLoop"] / res["uvloop"] if "uvloop" in res else float("nan")
        vs_aio = res["PyLoop"] / res["asyncio"]
        lines.append(
            f"| {title} | "
            + " | ".join(f"{res[k]:,.0f}" for k in kinds)
            + f" | {vs_uv:.2f}× | {vs_aio:.2f}× |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    if args.no_write:
        return
    cmd = ".venv/bin/python bench/bench_loop.py" + (" --quick" if args.quick else "")
    section = "\n".join(
        [
            "<!-- loop:start -->",
            "## Event loop micro-benchmarks",
            "",
            f"- Command: `{cmd}`",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}",
            f"- Software: Python {platform.python_version()}"
            + (f", uvloop {uvloop.__version__}" if uvloop is not None else ""),
            f"- Method: best of {repeats} runs per cell, loops alternating run by run, a fresh "
            "loop each run; operations per second (higher is better); all loops in the same "
            "process and invocation. The machine is shared with other jobs: expect noise.",
            "",
            table,
            "<!-- loop:end -->",
        ]
    )
    path = Path(__file__).resolve().parent / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    start, end = text.find("<!-- loop:start -->"), text.find("<!-- loop:end -->")
    if start != -1 and end != -1:
        text = text[:start] + section + text[end + len("<!-- loop:end -->") :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
