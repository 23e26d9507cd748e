//! What the binary's test files share: the binary without the caller's `MOLTFLOW_*` settings, and
//! a free loopback port.

use std::net::TcpListener;
use std::process::Command;

/// `moltflow` with every `MOLTFLOW_*` variable of the test's environment removed, so that each
/// test sets exactly what it means (CI exports `MOLTFLOW_TEST_*`, a developer may have more).
pub fn moltflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moltflow"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MOLTFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
