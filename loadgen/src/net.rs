//! TCP connections: optionally bound to a source address before connecting (to get past
//! one address's ~28,000 ephemeral ports), then handed to monoio.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// Opens a TCP connection to `broker`, from `source` when given. The socket is created
/// with socket2 (monoio's own connect cannot bind first), connected without blocking, and
/// its completion awaited through io_uring.
pub async fn tcp_connect(broker: SocketAddr, source: Option<IpAddr>) -> io::Result<monoio::net::TcpStream> {
    let domain = socket2::Domain::for_address(broker);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    if let Some(ip) = source {
        // Without this, bind() picks the local port at once, unique per address across all
        // destinations; with it the port is chosen at connect() per 4-tuple.
        set_bind_address_no_port(&s);
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match s.connect(&broker.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let std: std::net::TcpStream = s.into();
    let stream = monoio::net::TcpStream::from_std(std)?;
    stream.writable(false).await?;
    match socket_error(stream.as_raw_fd()) {
        0 => Ok(stream),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

fn set_bind_address_no_port(s: &socket2::Socket) {
    let one: libc::c_int = 1;
    // SAFETY: valid socket and a c_int option value of the right size. Failure only means
    // fewer ports, so it is ignored.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// SO_ERROR of a socket: the outcome of a non-blocking connect.
fn socket_error(fd: i32) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd; err and len are valid for writing.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    }
    err
}

/// Ends reading on a socket: a pending read returns 0 (end of file) at once. This is how
/// a load thread stops all its connections' readers at the end of the run.
pub fn shutdown_read(fd: i32) {
    // SAFETY: shutdown on a descriptor we own; errors (already closed) do not matter.
    unsafe { libc::shutdown(fd, libc::SHUT_RD) };
}

/// Raises the open-file limit to the hard limit; returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                return want.rlim_cur;
            }
        }
    }
    r.rlim_cur
}
