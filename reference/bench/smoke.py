#!/usr/bin/env python3
"""Functional check of one reference echo server (stdlib only).

usage: smoke.py SERVER_BINARY [PORT]

Starts the server on 127.0.0.1:PORT, checks echo semantics (short lines, a 70,000-byte line
with NUL bytes, pipelined lines, half-close with a final unterminated line, two clients at once,
a client stalled mid-line while another is served, a client that never reads, a client that
resets), zombies (for forking servers), SIGTERM/SIGINT -> exit 0 and bad arguments -> exit 2.
The server is killed by PID on the way out, whatever happens.
"""
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

TIMEOUT = 10.0


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(binary, port, extra=()):
    proc = subprocess.Popen([binary, *extra, str(port)], preexec_fn=raise_nofile,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {proc.stderr.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start listening")


def stop(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def recv_exact(s, n):
    chunks, got = [], 0
    while got < n:
        b = s.recv(min(65536, n - got))
        if not b:
            raise AssertionError(f"EOF after {got} of {n} bytes")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def roundtrip(s, data):
    """Send data (from a thread, so a large send cannot deadlock) and read it back."""
    t = threading.Thread(target=s.sendall, args=(data,))
    t.start()
    back = recv_exact(s, len(data))
    t.join()
    assert back == data, "echo differs"


def children_zombies(pid):
    zombies = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] == "Z":
            zombies += 1
    return zombies


def check_echo(port, proc):
    results = []

    def case(name, fn):
        try:
            fn()
            results.append((name, "ok"))
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            results.append((name, f"FAIL: {e!r}"))

    def short_lines():
        with connect(port) as s:
            for line in (b"hello\n", b"x\n", b"\n", b"the quick brown fox\n"):
                roundtrip(s, line)

    def long_line():
        with connect(port) as s:
            roundtrip(s, bytes(range(256)) * 274 + b"\x00" * 500 + b"\n")  # ~70,600 bytes

    def pipelined():
        with connect(port) as s:
            data = b"".join(b"line %d\n" % i for i in range(5000))
            s.sendall(data)  # one burst; we send nothing more and must still get all back
            assert recv_exact(s, len(data)) == data

    def half_close():
        with connect(port) as s:
            s.sendall(b"first line\nfinal unterminated")
            s.shutdown(socket.SHUT_WR)
            back = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                back += b
            assert back == b"first line\nfinal unterminated", back

    def two_clients():
        with connect(port) as a, connect(port) as b:
            for i in range(20):
                roundtrip(a, b"a%d\n" % i)
                roundtrip(b, b"b%d\n" % i)

    def stalled_client():
        with connect(port) as a:
            a.sendall(b"half a li")  # ... and stop mid-line
            with connect(port) as b:
                b.settimeout(2)
                roundtrip(b, b"served anyway\n")
            a.sendall(b"ne\n")
            back = b""
            while not back.endswith(b"\n"):
                back += a.recv(100)
            assert back == b"half a line\n", back

    def never_reads():
        # A client sends 8 MB and reads nothing for a while: the server must not fall over
        # (backpressure), must keep serving others, and must return every byte when it reads.
        data = os.urandom(8 << 20)
        with connect(port) as a:
            sender = threading.Thread(target=lambda: a.sendall(data))
            sender.start()
            time.sleep(1)
            with connect(port) as b:
                b.settimeout(2)
                roundtrip(b, b"still here\n")
            assert recv_exact(a, len(data)) == data
            sender.join()

    def reset_mid_echo():
        # Client sends a lot and resets without reading: the server's writes fail with
        # EPIPE/ECONNRESET; it must survive (no death by SIGPIPE).
        for _ in range(5):
            s = connect(port)
            s.sendall(b"y" * 200000 + b"\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        time.sleep(0.3)
        assert proc.poll() is None, "server died"
        with connect(port) as s:
            roundtrip(s, b"alive\n")

    for name, fn in [("short lines", short_lines), ("70,000-byte line with NULs", long_line),
                     ("5000 pipelined lines in one send", pipelined),
                     ("half-close with final partial line", half_close),
                     ("two clients at once", two_clients),
                     ("half a line stalls, other client served", stalled_client),
                     ("8 MB sender that does not read", never_reads),
                     ("resetting clients (SIGPIPE)", reset_mid_echo)]:
        case(name, fn)
    time.sleep(0.5)
    z = children_zombies(proc.pid)
    results.append(("no zombie children", "ok" if z == 0 else f"FAIL: {z} zombies"))
    return results


def check_signal(binary, port, sig):
    proc = start(binary, port)
    try:
        with connect(port) as s:
            roundtrip(s, b"before signal\n")
            proc.send_signal(sig)
            rc = proc.wait(timeout=5)
        return "ok" if rc == 0 else f"FAIL: exit {rc}"
    except subprocess.TimeoutExpired:
        return "FAIL: did not exit"
    finally:
        stop(proc)


def check_bad_args(binary):
    bad = [[], ["abc"], ["0"], ["70000"], ["2000", "2001"]]
    if binary.endswith("pool"):
        bad += [["--workers"], ["--workers", "0", "2000"], ["--workers", "x", "2000"]]
    out = []
    for args in bad:
        r = subprocess.run([binary, *args], capture_output=True, timeout=5)
        lines = r.stderr.decode().splitlines()
        if r.returncode != 2 or len(lines) != 1 or "usage" not in lines[0]:
            out.append(f"FAIL {args}: rc={r.returncode} stderr={r.stderr!r}")
    return "ok" if not out else "; ".join(out)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: smoke.py SERVER_BINARY [PORT]")
    binary = os.path.abspath(sys.argv[1])
    port = int(sys.argv[2]) if len(sys.argv) == 3 else 23456
    raise_nofile()
    proc = start(binary, port)
    try:
        results = check_echo(port, proc)
    finally:
        stop(proc)
    results.append(("SIGTERM -> exit 0", check_signal(binary, port, signal.SIGTERM)))
    results.append(("SIGINT -> exit 0", check_signal(binary, port, signal.SIGINT)))
    results.append(("bad arguments -> usage, exit 2", check_bad_args(binary)))
    name = os.path.basename(binary)
    for what, verdict in results:
        print(f"{name:13} {what:42} {verdict}")
    failed = sum(v != "ok" for _, v in results)
    print(f"{name}: {len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
