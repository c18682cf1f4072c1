"""Start a reference echo server for a benchmark and always kill it afterwards (stdlib only)."""
import contextlib
import os
import resource
import signal
import socket
import subprocess
import time

NOFILE = 65536


def raise_nofile(want=NOFILE):
    """Raise this process's descriptor limit: to `want` if allowed (root), else soft = hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _server_preexec():
    # Runs in the child before exec: give the server a hard limit high enough for the test;
    # the server itself raises its soft limit to the hard one.
    raise_nofile()


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through `finally`, which kills the server


@contextlib.contextmanager
def running_server(binary, port, extra_args=()):
    """Run `binary [extra_args] port` until the with-block ends, then kill it by PID (and its
    process group, for forking servers whose children may still hold connections)."""
    signal.signal(signal.SIGTERM, _terminate)
    proc = subprocess.Popen([binary, *extra_args, str(port)], preexec_fn=_server_preexec,
                            start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{binary} exited early: {proc.stderr.read().decode()!r}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} is not listening on port {port}")
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group we created: id == server's PID
        proc.wait()


def server_usage(pid):
    """Resident memory (MiB) and thread count of the server process."""
    rss = threads = 0
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads
