//! Reading the server from the outside, through `/proc`.
//!
//! Every verdict the grader gives rests on numbers read here: which processes belong to the
//! server, what descriptors they hold, what state their sockets are in, what each thread is
//! blocked in, how many thread stacks are mapped. Nothing here writes to the server or
//! disturbs it; a process that vanishes mid-read is skipped, never an error.

pub mod fds;
pub mod listen;
pub mod memory;
pub mod owner;
pub mod procs;
pub mod sockets;
pub mod tasks;

pub use fds::{fd_table, FdEntry};
pub use memory::MemoryStats;
pub use procs::{ProcInfo, ProcTable};
pub use sockets::{SocketTable, TcpSocket};
pub use tasks::{task_snapshots, TaskSnapshot};

/// Process ids as the kernel gives them.
pub type Pid = i32;
