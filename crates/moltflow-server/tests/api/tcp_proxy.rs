//! A TCP proxy the test controls, put between the service and the machine's Redis so that a test
//! can take Redis away or make it hang (and give it back) without touching a server other
//! programs use.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Open,
    /// Connections stay open but nothing is forwarded: a Redis that hangs.
    Stalled,
    /// Every connection is closed, new ones as soon as they arrive: a Redis that is gone.
    Cut,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards a loopback port to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(Mode::Open);
        let gate = mode.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *gate.borrow() == Mode::Cut {
                    drop(client);
                    continue;
                }
                let gate = gate.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        _ = pump(client_read, server_write, gate.clone()) => {}
                        _ = pump(server_read, client_write, gate) => {}
                    }
                });
            }
        });
        TcpProxy { addr, mode, accept }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Holds every byte from now on, closing nothing.
    pub fn stall(&self) {
        self.mode.send_replace(Mode::Stalled);
    }

    /// Forwards again (what a stall held goes through).
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }
}

/// Copies one direction while the proxy is open, holds the bytes while it is stalled, and ends
/// (closing the connection) when it is cut.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut gate: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = gate.wait_for(|m| *m == Mode::Cut) => return,
        };
        match gate.wait_for(|m| *m != Mode::Stalled).await {
            Ok(mode) if *mode == Mode::Open => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
