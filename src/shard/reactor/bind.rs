//! Binding the configured listeners: one SO_REUSEPORT socket per shard on each address,
//! after a probe that finds the port taken (by another ringmq too), and the per-listener
//! connection limits the shards share.

use super::super::BoundListener;
use crate::config::{Config, ListenerConfig};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The listen backlog of each shard's socket.
const LISTEN_BACKLOG: i32 = 4096;

/// One configured listener's connection count and limit (`max_connections` after its
/// `listener` line), shared by every shard's socket on it.
#[derive(Debug)]
pub struct ListenerLimit {
    open: AtomicUsize,
    /// `usize::MAX`: no limit. Changed by a reload.
    max: AtomicUsize,
}

impl ListenerLimit {
    pub fn new(max: Option<usize>) -> Self {
        ListenerLimit { open: AtomicUsize::new(0), max: AtomicUsize::new(max.unwrap_or(usize::MAX)) }
    }

    pub fn set_max(&self, max: Option<usize>) {
        self.max.store(max.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// Takes a place for a new connection, or `None` when the listener is full.
    pub fn admit(self: &Arc<Self>) -> Option<ListenerSeat> {
        let max = self.max.load(Ordering::Relaxed);
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        if before >= max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(ListenerSeat(self.clone()))
    }
}

/// A connection's place on its listener, given back when the socket closes.
#[derive(Debug)]
pub struct ListenerSeat(Arc<ListenerLimit>);

impl Drop for ListenerSeat {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What binding produced: each shard's sockets, the addresses bound, and each
/// configured listener's limit.
pub struct Bound {
    pub per_shard: Vec<Vec<BoundListener>>,
    pub addrs: Vec<SocketAddr>,
    pub limits: Vec<Arc<ListenerLimit>>,
}

/// Binds every listener for `shards` shards. A port that is taken fails the start with
/// "Address already in use", as in Mosquitto.
pub fn bind_all(config: &Config, port: u16, shards: usize) -> anyhow::Result<Bound> {
    let mut bound =
        Bound { per_shard: (0..shards).map(|_| Vec::new()).collect(), addrs: Vec::new(), limits: Vec::new() };
    let default_listeners = config.listeners.is_empty();
    for (index, listener) in config.bind_listeners(port).iter().enumerate() {
        let limit = Arc::new(ListenerLimit::new(listener.max_connections));
        bound.limits.push(limit.clone());
        for &addr in &listener.addrs {
            match bind_reuseport(addr, listener, shards) {
                Ok(ls) => {
                    let local = ls[0].local_addr()?;
                    crate::log!(
                        Notice,
                        "Opening {} listen socket on {}.",
                        if local.is_ipv6() { "ipv6" } else { "ipv4" },
                        local
                    );
                    bound.addrs.push(local);
                    for (i, socket) in ls.into_iter().enumerate() {
                        bound.per_shard[i].push(BoundListener {
                            socket,
                            port: local.port(),
                            index: index as u16,
                            limit: limit.clone(),
                        });
                    }
                }
                // ::1 may be missing where IPv6 is off; the loopback default then runs on IPv4.
                Err(e) if default_listeners && addr.is_ipv6() => {
                    crate::log!(Warning, "Warning: not listening on {}: {}.", addr, e);
                }
                // An unspecified IPv6 address where IPv6 is off: Mosquitto listens on the rest.
                Err(e) if addr.is_ipv6() && addr.ip().is_unspecified() && is_no_ipv6(&e) => {
                    crate::log!(Warning, "Warning: not listening on {}: {}.", addr, e);
                }
                Err(e) => {
                    let at =
                        listener.origin.as_deref().map(|o| format!(" (listener at {o})")).unwrap_or_default();
                    anyhow::bail!("cannot listen on {addr}{at}: {e}");
                }
            }
        }
    }
    Ok(bound)
}

fn is_no_ipv6(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL))
}

fn new_socket(addr: SocketAddr, listener: &ListenerConfig) -> std::io::Result<socket2::Socket> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if let Some(dev) = &listener.bind_interface {
        s.bind_device(Some(dev.as_bytes()))
            .map_err(|e| std::io::Error::new(e.kind(), format!("bind_interface {dev}: {e}")))?;
    }
    Ok(s)
}

/// Binds one SO_REUSEPORT socket per shard on `addr`.
///
/// SO_REUSEPORT would also let a second ringmq (or two `listener` lines the config
/// check missed) bind the same port and silently take part of the connections. So a
/// socket without it is bound first: that fails with "Address already in use" whenever
/// anything listens there. It is closed before the shards' sockets bind. With port 0 the
/// first shard's socket picks the port and the others join it.
fn bind_reuseport(
    addr: SocketAddr,
    listener: &ListenerConfig,
    shards: usize,
) -> std::io::Result<Vec<TcpListener>> {
    if addr.port() != 0 {
        let probe = new_socket(addr, listener)?;
        probe.bind(&addr.into())?;
        drop(probe);
    }
    let mut out = Vec::with_capacity(shards);
    let mut addr = addr;
    for _ in 0..shards {
        let s = new_socket(addr, listener)?;
        s.set_reuse_port(true)?;
        s.bind(&addr.into())?;
        s.listen(LISTEN_BACKLOG)?;
        let l: TcpListener = s.into();
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_taken_by_a_reuseport_listener_is_refused() {
        let l = ListenerConfig::on("127.0.0.1:0".parse().unwrap());
        let first = bind_reuseport("127.0.0.1:0".parse().unwrap(), &l, 2).unwrap();
        let taken = first[0].local_addr().unwrap();
        let err = bind_reuseport(taken, &l, 2).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        drop(first);
        assert!(bind_reuseport(taken, &l, 2).is_ok(), "the port is free again");
    }

    #[test]
    fn a_listener_limit_admits_up_to_its_maximum() {
        let limit = Arc::new(ListenerLimit::new(Some(2)));
        let a = limit.admit().unwrap();
        let _b = limit.admit().unwrap();
        assert!(limit.admit().is_none());
        drop(a);
        assert!(limit.admit().is_some());
        limit.set_max(None);
        assert!(limit.admit().is_some());
    }
}
