#!/usr/bin/env python3
"""Echo throughput (MB/s) and round-trip latency of an echo server (stdlib only).

usage: throughput.py SERVER_BINARY [--port P] [--clients 1,100,1000] [--seconds 3]
                     [--size 4096] [-- SERVER_ARGS...]

For each client count C, opens C connections, then for --seconds runs a closed loop on each:
send one --size-byte line, wait for all of it to come back (verified), repeat. Prints, per C,
the echoed MB/s (bytes sent back to clients, 10^6 bytes per MB), round trips per second, and
the median and 99th-percentile round-trip time, and how many clients got at least one answer
(a pool server answers only as many clients as it has workers). One single-threaded Python client drives every
connection, so with many clients the figures include time a reply waits for the client's loop,
and on a small machine the client's CPU may be the limit, not the server's. The server is
killed by PID when the script ends, on error too.
"""
import argparse
import os
import selectors
import socket
import sys
import time

from _server import raise_nofile, running_server, server_usage


def connect_all(port, count, deadline):
    socks = []
    for _ in range(count):
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        s.setblocking(False)
        socks.append(s)
    return socks


def measure(port, clients, seconds, size):
    message = b"e" * (size - 1) + b"\n"
    socks = connect_all(port, clients, time.monotonic() + 30)
    sel = selectors.DefaultSelector()
    state = {}  # socket -> [bytes left to send, bytes received so far, start of round trip]
    answered = set()  # clients that completed at least one round trip
    rtts = []
    echoed = 0
    t0 = time.monotonic()
    end = t0 + seconds
    for s in socks:
        state[s] = [memoryview(message), bytearray(), time.perf_counter()]
        sel.register(s, selectors.EVENT_WRITE)
    errors = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for key, _ in sel.select(timeout=min(0.1, end - now)):
            s = key.fileobj
            st = state[s]
            try:
                if st[0]:
                    n = s.send(st[0])
                    st[0] = st[0][n:]
                    if not st[0]:
                        sel.modify(s, selectors.EVENT_READ)
                else:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("server closed the connection")
                    st[1] += data
                    if len(st[1]) >= size:
                        if st[1] != message:
                            raise OSError("wrong echo")
                        rtts.append(time.perf_counter() - st[2])
                        answered.add(s)
                        echoed += size
                        state[s] = [memoryview(message), bytearray(), time.perf_counter()]
                        sel.modify(s, selectors.EVENT_WRITE)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                errors += 1
                sel.unregister(s)
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    rtts.sort()

    def pct(p):
        return rtts[min(len(rtts) - 1, int(p * len(rtts)))] * 1e3 if rtts else float("nan")

    return dict(clients=clients, mbps=echoed / elapsed / 1e6, rps=len(rtts) / elapsed,
                p50=pct(0.50), p99=pct(0.99), trips=len(rtts), errors=errors,
                answered=len(answered))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--port", type=int, default=24690)
    ap.add_argument("--clients", default="1,100,1000", help="comma-separated client counts")
    ap.add_argument("--seconds", type=float, default=3.0, help="measured time per client count")
    ap.add_argument("--size", type=int, default=4096, help="bytes per round trip (a line)")
    argv = sys.argv[1:]
    server_args = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.server_args = server_args
    counts = [int(c) for c in a.clients.split(",")]
    if a.size < 2:
        sys.exit("throughput.py: --size must be at least 2")
    raise_nofile()
    binary = os.path.abspath(a.binary)
    name = os.path.basename(binary) + ("" if not a.server_args else " " + " ".join(a.server_args))
    rows = []
    with running_server(binary, a.port, a.server_args) as proc:
        for c in counts:
            rows.append(measure(a.port, c, a.seconds, a.size))
            time.sleep(0.5)  # let the server notice the closed connections
        rss, threads = server_usage(proc.pid)
    print(f"{name}: {a.size}-byte lines, {a.seconds:g} s per row")
    print(f"{'clients':>8} {'answered':>8} {'MB/s':>9} {'trips/s':>10} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'errors':>7}")
    for r in rows:
        print(f"{r['clients']:>8} {r['answered']:>8} {r['mbps']:>9.1f} {r['rps']:>10.0f} {r['p50']:>9.3f} "
              f"{r['p99']:>9.3f} {r['errors']:>7}")
    print(f"server after the run: RSS {rss} MiB, {threads} threads")
    failed = any(r["errors"] or not r["trips"] for r in rows)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
