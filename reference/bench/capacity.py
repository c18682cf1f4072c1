#!/usr/bin/env python3
"""How many concurrent connections can an echo server hold and serve at once? (stdlib only)

usage: capacity.py SERVER_BINARY [--port P] [-n N] [--time SECONDS] [--idle SECONDS]
                   [-- SERVER_ARGS...]

Starts the server on 127.0.0.1:P, opens N connections (default 10,000), and has every one send
a line and check its echo while ALL of them stay connected: nothing is closed until the end.
Prints how many connected, were served (echo verified) and were still held open at the end.
Stops after --time seconds (default 120), or after --idle seconds without progress (default 20:
e.g. a pool server whose workers are all busy serves nobody else). The server is killed by PID
when the script ends, on error too.
"""
import argparse
import errno
import os
import selectors
import socket
import sys
import time

from _server import raise_nofile, running_server, server_usage

MAX_CONNECTING = 512  # connects in flight at once: gentle on the SYN queue


def run(port, n, time_cap, idle_cap):
    sel = selectors.DefaultSelector()
    conns = {}  # socket -> [index, state, bytes to send, bytes received]
    connected = served = failed = 0
    started = 0
    connecting = 0
    t0 = last_progress = time.monotonic()
    while served + failed < n:
        now = time.monotonic()
        if now - t0 > time_cap or now - last_progress > idle_cap:
            break
        while started < n and connecting < MAX_CONNECTING:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                started += 1
                continue
            line = b"client %d says hello\n" % started
            conns[s] = [started, "connecting", line, bytearray()]
            sel.register(s, selectors.EVENT_WRITE)
            started += 1
            connecting += 1
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            st = conns[s]
            try:
                if st[1] == "connecting":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    connecting -= 1
                    connected += 1
                    st[1] = "sending"
                    last_progress = time.monotonic()
                if st[1] == "sending":
                    sent = s.send(st[2])
                    st[2] = st[2][sent:]
                    if not st[2]:
                        st[1] = "receiving"
                        sel.modify(s, selectors.EVENT_READ)
                elif st[1] == "receiving":
                    data = s.recv(4096)
                    if not data:
                        raise OSError("server closed the connection before echoing")
                    st[3] += data
                    want = b"client %d says hello\n" % st[0]
                    if len(st[3]) >= len(want):
                        if bytes(st[3]) != want:
                            raise OSError("wrong echo")
                        st[1] = "served"
                        served += 1
                        last_progress = time.monotonic()
                        sel.unregister(s)  # stays connected, but needs nothing more
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                if st[1] == "connecting":
                    connecting -= 1
                st[1] = "failed"
                failed += 1
                sel.unregister(s)
    elapsed = time.monotonic() - t0
    # Everyone is still connected: check the server has not closed any served connection.
    held = 0
    for s, st in conns.items():
        if st[1] in ("served", "receiving", "sending"):
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    continue  # the server hung up
            except BlockingIOError:
                pass  # open, nothing to read: still held
            except OSError:
                continue
            held += 1
    return dict(started=started, connected=connected, served=served, failed=failed,
                held=held, elapsed=elapsed, conns=conns)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--port", type=int, default=24680)
    ap.add_argument("-n", type=int, default=10000, help="concurrent connections (10000)")
    ap.add_argument("--time", type=float, default=120.0, help="overall cap, seconds (120)")
    ap.add_argument("--idle", type=float, default=20.0, help="stop after no progress (20 s)")
    argv = sys.argv[1:]
    server_args = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.server_args = server_args
    limit = raise_nofile()
    if limit < a.n + 100:
        sys.exit(f"capacity.py: descriptor limit {limit} is too low for {a.n} connections")
    binary = os.path.abspath(a.binary)
    with running_server(binary, a.port, a.server_args) as proc:
        r = run(a.port, a.n, a.time, a.idle)
        rss, threads = server_usage(proc.pid)
        alive = proc.poll() is None
        for s in r["conns"]:
            s.close()
    name = os.path.basename(binary) + ("" if not a.server_args else " " + " ".join(a.server_args))
    print(f"{name}: {a.n} clients requested, {r['connected']} connected, "
          f"{r['served']} served (echo verified), {r['held']} held open at the end, "
          f"{r['failed']} failed, {r['elapsed']:.1f} s; server alive={alive}, "
          f"RSS {rss} MiB, {threads} threads")
    sys.exit(0 if r["served"] == a.n and r["held"] == a.n else 1)


if __name__ == "__main__":
    main()
