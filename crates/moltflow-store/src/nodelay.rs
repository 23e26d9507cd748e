//! TCP_NODELAY on the PostgreSQL connections, which sqlx 0.9.0 no longer sets (a regression:
//! launchbadge/sqlx#4335, fixed upstream by #4336, not released as of this writing).
//!
//! Without it, Nagle's algorithm holds the last part of any message longer than one TCP segment
//! until the server acknowledges the first part, and PostgreSQL delays that acknowledgement by up
//! to 40 ms. Measured here with `bench/usage.sh` on one machine: 1000-event batches were stored at
//! 17,000 events/s over TCP and 71,600 over the Unix socket (one segment on loopback is 64 KiB; on a
//! real network it is ~1.4 KiB, so even a consume batch's arrays would wait).
//!
//! sqlx gives no access to its socket, so when a connection opens, the sockets of this process
//! connected to the database's port get the option (setting it again is harmless). Remove this
//! module once a sqlx release sets the option itself.

/// Sets TCP_NODELAY on every TCP socket of this process whose peer is on `port`.
#[cfg(target_os = "linux")]
pub fn on_sockets_to(port: u16) {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;

    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    for entry in entries.flatten() {
        let is_socket =
            std::fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only borrowed (never closed: `ManuallyDrop`), and only
        // `getpeername`, `getsockopt` and `setsockopt` are called on it, which fail harmlessly
        // on a descriptor that is not a TCP socket (or was closed and reused meanwhile).
        let socket = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
        if socket.peer_addr().is_ok_and(|peer| peer.port() == port) && socket.nodelay().is_ok_and(|on| !on) {
            let _ = socket.set_nodelay(true);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn on_sockets_to(_port: u16) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_connected_socket_gets_nodelay_and_others_are_left_alone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(!client.nodelay().expect("nodelay"));
        super::on_sockets_to(port);
        assert!(client.nodelay().expect("nodelay"), "the socket to the port");
        assert!(!accepted.nodelay().expect("nodelay"), "its peer is on another port");
    }
}
