//! The kernel's TCP socket table (`/proc/net/tcp` and `tcp6`), keyed by inode.

use procfs::net::TcpState;
use std::collections::HashMap;

/// One TCP socket as the kernel lists it.
#[derive(Debug, Clone)]
pub struct TcpSocket {
    pub inode: u64,
    pub local_port: u16,
    pub remote_port: u16,
    pub state: TcpState,
    /// Bytes received but not yet read by the owner.
    pub rx_queue: u32,
    /// Bytes written but not yet acknowledged by the peer.
    pub tx_queue: u32,
}

/// The state name used in reports, as `ss`/`netstat` print it.
pub fn state_name(s: &TcpState) -> &'static str {
    match s {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
        TcpState::NewSynRecv => "NEW_SYN_RECV",
    }
}

#[derive(Debug, Default)]
pub struct SocketTable {
    /// Every listed socket; `inode` 0 (TIME_WAIT and the like) are kept too.
    pub all: Vec<TcpSocket>,
    by_inode: HashMap<u64, usize>,
}

impl SocketTable {
    pub fn read() -> SocketTable {
        let mut all = Vec::new();
        for entries in [procfs::net::tcp(), procfs::net::tcp6()]
            .into_iter()
            .flatten()
        {
            for e in entries {
                all.push(TcpSocket {
                    inode: e.inode,
                    local_port: e.local_address.port(),
                    remote_port: e.remote_address.port(),
                    state: e.state,
                    rx_queue: e.rx_queue,
                    tx_queue: e.tx_queue,
                });
            }
        }
        let by_inode = all
            .iter()
            .enumerate()
            .filter(|(_, s)| s.inode != 0)
            .map(|(i, s)| (s.inode, i))
            .collect();
        SocketTable { all, by_inode }
    }

    pub fn by_inode(&self, inode: u64) -> Option<&TcpSocket> {
        self.by_inode.get(&inode).map(|&i| &self.all[i])
    }

    pub fn listeners_on(&self, port: u16) -> Vec<&TcpSocket> {
        self.all
            .iter()
            .filter(|s| s.local_port == port && s.state == TcpState::Listen)
            .collect()
    }

    /// Whether anything at all uses `port` locally (listening, connected or lingering).
    pub fn port_in_use(&self, port: u16) -> bool {
        self.all
            .iter()
            .any(|s| s.local_port == port || s.remote_port == port)
    }

    /// The server-side socket of the connection whose client end has local port `client_port`.
    pub fn server_side_of(&self, server_port: u16, client_port: u16) -> Option<&TcpSocket> {
        self.all
            .iter()
            .find(|s| s.local_port == server_port && s.remote_port == client_port && s.inode != 0)
    }
}
