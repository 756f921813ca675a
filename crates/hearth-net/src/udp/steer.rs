//! Steering by session: a classic BPF program on the SO_REUSEPORT group that
//! hands each protected datagram to the socket of its session's shard.

use std::io;

use super::BatchSocket;

impl BatchSocket {
    /// Asks the kernel to deliver each protected datagram to the socket of
    /// the shard its session id names (the id's top byte, modulo `shards`),
    /// as QUIC servers steer by connection id: a classic BPF program on the
    /// SO_REUSEPORT group, whose sockets must have been bound in shard
    /// order. Anything else (handshakes) keeps the kernel's address hash.
    /// Without it (other systems), datagrams that land on the wrong shard
    /// are forwarded by the gate, at the cost of a hop.
    #[cfg(target_os = "linux")]
    pub fn steer_by_session_shard(&self, shards: usize) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // Classic BPF opcodes: class | size or operation | source.
        const LD_B_ABS: u16 = 0x10 | 0x20; // BPF_LD (0) | BPF_B | BPF_ABS
        const JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K (0)
        const MOD_K: u16 = 0x04 | 0x90; // BPF_ALU | BPF_MOD | BPF_K (0)
        const RET_A: u16 = 0x06 | 0x10; // BPF_RET | BPF_A
        const RET_K: u16 = 0x06; // BPF_RET | BPF_K (0)
        let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        let mut program = [
            op(LD_B_ABS, 0, 0, 0), // A = the packet type
            op(
                JEQ_K,
                0,
                3,
                u32::from(hearth_proto::handshake::kind::PROTECTED),
            ),
            op(LD_B_ABS, 0, 0, 1),          // A = the session id's top byte
            op(MOD_K, 0, 0, shards as u32), // A = its shard
            op(RET_A, 0, 0, 0),
            op(RET_K, 0, 0, u32::MAX), // out of range: the kernel's own hash
        ];
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: a valid socket descriptor and a filter program that
        // outlives the call (the kernel copies it).
        let result = unsafe {
            libc::setsockopt(
                self.io.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_REUSEPORT_CBPF,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn steer_by_session_shard(&self, _shards: usize) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "steering datagrams to shards needs Linux's SO_ATTACH_REUSEPORT_CBPF",
        ))
    }
}
