//! What the four reference echo servers share: argument parsing, the listening socket, the
//! descriptor limit, signal set-up and the `echo` routine itself. Each server in `src/bin/`
//! differs only in how it runs many `echo` flows at once (processes, events, threads, a pool).

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{signal, SigHandler, SigSet, Signal};
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn,
};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// Bad arguments: one line on stderr, exit status 2.
pub fn usage(text: &str) -> ! {
    eprintln!("{text}");
    std::process::exit(2)
}

/// A TCP port, 1..=65535 (0 would mean "any port", which a client could not find).
pub fn parse_port(arg: &str) -> Option<u16> {
    arg.parse().ok().filter(|&p| p != 0)
}

/// The command line of a server that takes exactly `<port>`.
pub fn port_arg(usage_text: &str) -> u16 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [port] => parse_port(port).unwrap_or_else(|| usage(usage_text)),
        _ => usage(usage_text),
    }
}

/// Block SIGINT and SIGTERM in this thread and every thread it creates later (call it first).
/// A blocked signal waits to be *read*, by `signalfd` or `sigwait`, so no handler runs and no
/// "stop" flag can be missed between checking it and blocking in accept/poll.
pub fn block_stop_signals() -> SigSet {
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block().expect("sigprocmask");
    stop
}

/// For the blocking, multi-threaded servers: one thread sleeps in `sigwait` and ends the whole
/// process with status 0 when SIGINT/SIGTERM arrives; the kernel then closes every socket.
pub fn exit_on_stop_signal(stop: SigSet) {
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = stop.wait();
            std::process::exit(0)
        })
        .expect("spawn signal thread");
}

/// Everything a server does before serving: raise the descriptor limit, make SIGPIPE harmless,
/// and open the listening socket on 127.0.0.1:`port` (exit 1 if that fails).
pub fn start(port: u16) -> TcpListener {
    // Every connection costs a descriptor; the default soft limit (often 1024) would cap us far
    // below what the hard limit allows.
    if let Ok((_soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    // Writing to a connection the client has closed raises SIGPIPE, whose default action kills
    // the whole server. Ignored, the write fails with EPIPE instead and we drop that one client.
    // (Rust's runtime already does this before `main`; a C server must, so we say it here.)
    // SAFETY: SIG_IGN installs no handler, so no code can run in signal context.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }.expect("ignore SIGPIPE");
    open_listenfd(port).unwrap_or_else(|e| {
        eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    })
}

/// The lecture's `open_listenfd`, with the largest listen backlog the kernel allows, so a burst
/// of simultaneous connects waits in the kernel's queue instead of being dropped.
fn open_listenfd(port: u16) -> nix::Result<TcpListener> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?; // restart at once, despite TIME_WAIT
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port))?;
    listen(&fd, Backlog::MAXCONN)?;
    Ok(TcpListener::from(fd))
}

/// Send back every byte the client sends, until it closes (or half-closes) its side.
///
/// Bytes, not lines: a NUL, a 70,000-byte line or a last line without '\n' needs no special case,
/// and the client still gets every byte back in order.
pub fn echo(mut conn: &TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => return Ok(()), // EOF: the client will send nothing more
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue, // EINTR: just retry
            Err(e) => return Err(e),
        };
        conn.write_all(&buf[..n])?; // retries short writes and EINTR for us
    }
}
