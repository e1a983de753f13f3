//! A TCP proxy the test controls, put between the service and a dependency (Redis,
//! PostgreSQL) to cut the connection and bring it back.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes flow both ways.
    Up,
    /// Every connection is reset and new ones are closed at once (a dependency that is down).
    Refused,
    /// Connections stay open but no byte moves (a cut cable: only timeouts notice).
    Blackholed,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    state: Arc<watch::Sender<Link>>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(watch::channel(Link::Up).0);
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let link = state.subscribe();
                    tokio::spawn(pipe(client, upstream, link));
                }
            })
        };
        TcpProxy { addr, state, task }
    }

    pub fn set(&self, link: Link) {
        self.state.send_replace(link);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways while the link is up; on `Refused` drops both sides, on `Blackholed`
/// stops copying until the link changes.
async fn pipe(mut client: TcpStream, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    if *link.borrow_and_update() == Link::Refused {
        let _ = client.shutdown().await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        let current = *link.borrow_and_update();
        match current {
            Link::Refused => return,
            Link::Blackholed => {
                if link.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Link::Up => {}
        }
        use tokio::io::AsyncReadExt;
        tokio::select! {
            read = client_read.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if server_write.write_all(&up[..n]).await.is_err() { return },
            },
            read = server_read.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if client_write.write_all(&down[..n]).await.is_err() { return },
            },
            changed = link.changed() => if changed.is_err() { return },
        }
    }
}
