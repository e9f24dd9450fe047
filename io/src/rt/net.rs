//! TCP through the ring: accept, connect, recv, send, and zero-copy
//! file-to-socket transfer: `sendfile(2)` on the ring's thread for bytes
//! in the page cache, SPLICE through a pipe on io-wq for the rest.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use super::fs::{File, IoBuf};
use super::op::Op;

/// Bytes a pipe holds between the two halves of a splice.
const PIPE_BYTES: i32 = 1 << 20;
/// Bytes [`TcpStream::send_file`] moves per step: one page-cache look,
/// then one `sendfile` run or one SPLICE pair.
const STEP_BYTES: u64 = PIPE_BYTES as u64;

pub struct TcpListener {
    fd: OwnedFd,
}

impl TcpListener {
    /// Binds with `SO_REUSEPORT`, so each shard can own a listener on the
    /// same address and the kernel spreads connections between them.
    pub fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain socket syscalls on a descriptor we own from here on.
        let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        set_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        bind_and_listen(fd.as_raw_fd(), addr)?;
        Ok(TcpListener { fd })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let listener =
            std::mem::ManuallyDrop::new(unsafe { StdListener::from_raw_fd(self.fd.as_raw_fd()) });
        listener.local_addr()
    }

    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut storage: Box<(libc::sockaddr_storage, libc::socklen_t)> = Box::new((
            // SAFETY: an all-zero sockaddr_storage is a valid value.
            unsafe { std::mem::zeroed() },
            std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        ));
        let addr_ptr = &mut storage.0 as *mut libc::sockaddr_storage as *mut libc::sockaddr;
        let len_ptr = &mut storage.1 as *mut libc::socklen_t;
        let entry = opcode::Accept::new(types::Fd(self.fd.as_raw_fd()), addr_ptr, len_ptr)
            .flags(libc::SOCK_CLOEXEC)
            .build();
        // SAFETY: the sockaddr storage is boxed and owned by the op.
        let (completion, storage) = unsafe { Op::submit(entry, storage) }.await;
        let fd = completion.into_io()? as RawFd;
        let stream = TcpStream {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pipe: std::cell::OnceCell::new(),
            nonblocking: std::cell::Cell::new(false),
        };
        let peer =
            sockaddr_to_std(&storage.0).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        stream.set_nodelay()?;
        Ok((stream, peer))
    }
}

fn bind_and_listen(fd: RawFd, addr: SocketAddr) -> io::Result<()> {
    let (storage, len) = std_to_sockaddr(addr);
    // SAFETY: `storage` is a valid sockaddr of `len` bytes.
    let r = unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain syscall on a bound socket we own.
    if unsafe { libc::listen(fd, 1024) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_opt(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: setsockopt with a pointer to a live i32.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn std_to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is valid; we fill the variant we use.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in =
                unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
        }
        _ => None,
    }
}

/// A connected TCP socket. Holds a pipe, made on first use, for splicing.
pub struct TcpStream {
    fd: OwnedFd,
    pipe: std::cell::OnceCell<(OwnedFd, OwnedFd)>,
    /// `O_NONBLOCK` is set (on the first `sendfile`). The ring's RECV and
    /// SEND ignore it: they wait for readiness either way.
    nonblocking: std::cell::Cell<bool>,
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl TcpStream {
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: new socket owned right away.
        let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = Box::new(std_to_sockaddr(addr));
        let entry = opcode::Connect::new(
            types::Fd(fd.as_raw_fd()),
            (&addr.0 as *const libc::sockaddr_storage).cast(),
            addr.1,
        )
        .build();
        // SAFETY: the boxed sockaddr is owned by the op.
        let (completion, _addr) = unsafe { Op::submit(entry, addr) }.await;
        completion.into_io()?;
        let stream = TcpStream {
            fd,
            pipe: std::cell::OnceCell::new(),
            nonblocking: std::cell::Cell::new(false),
        };
        stream.set_nodelay()?;
        Ok(stream)
    }

    /// Wraps a std stream (e.g. one connected synchronously in a test).
    pub fn from_std(stream: StdStream) -> TcpStream {
        TcpStream {
            fd: stream.into(),
            pipe: std::cell::OnceCell::new(),
            nonblocking: std::cell::Cell::new(false),
        }
    }

    fn set_nodelay(&self) -> io::Result<()> {
        set_opt(self.fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
    }

    /// Receives into the spare capacity of `buf`, appending what arrives.
    /// Returns the count; 0 means the peer closed.
    pub async fn recv(&self, mut buf: Vec<u8>, max: usize) -> (io::Result<usize>, Vec<u8>) {
        let start = buf.len();
        buf.reserve(max);
        let len = u32::try_from(max).unwrap_or(u32::MAX);
        // SAFETY: `reserve` made room for `max` bytes past `start`.
        let ptr = unsafe { buf.as_mut_ptr().add(start) };
        let entry = opcode::Recv::new(types::Fd(self.fd.as_raw_fd()), ptr, len).build();
        let (completion, mut buf) = unsafe { Op::submit(entry, buf) }.await;
        match completion.into_io() {
            Ok(n) => {
                // SAFETY: the kernel initialised `n` bytes after `start`.
                unsafe { buf.set_len(start + n as usize) };
                super::count(|s| s.bytes_received += u64::from(n));
                (Ok(n as usize), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Receives up to `max` bytes into the spare capacity of `buf` (grown as
    /// needed), appending them. Returns the count; 0 means the peer closed.
    pub async fn recv_bytes(
        &self,
        mut buf: bytes::BytesMut,
        max: usize,
    ) -> (io::Result<usize>, bytes::BytesMut) {
        buf.reserve(max);
        let start = buf.len();
        let len = u32::try_from(max).unwrap_or(u32::MAX);
        // SAFETY: `reserve` made room for `max` bytes past `start`; the
        // BytesMut is owned by the op and its storage does not move.
        let ptr = unsafe { buf.as_mut_ptr().add(start) };
        let entry = opcode::Recv::new(types::Fd(self.fd.as_raw_fd()), ptr, len).build();
        let (completion, mut buf) = unsafe { Op::submit(entry, buf) }.await;
        match completion.into_io() {
            Ok(n) => {
                // SAFETY: the kernel initialised `n` bytes after `start`.
                unsafe { buf.set_len(start + n as usize) };
                super::count(|s| s.bytes_received += u64::from(n));
                (Ok(n as usize), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Sends all of `buf`.
    pub async fn send_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let mut done = 0usize;
        let mut buf = buf;
        while done < buf.bytes_len() {
            let len = u32::try_from(buf.bytes_len() - done).unwrap_or(u32::MAX);
            let ptr = unsafe { buf.as_ptr().add(done) };
            let entry = opcode::Send::new(types::Fd(self.fd.as_raw_fd()), ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build();
            // SAFETY: `buf`'s heap bytes are owned by the op.
            let (completion, back) = unsafe { Op::submit(entry, buf) }.await;
            buf = back;
            match completion.into_io() {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => {
                    done += n as usize;
                    super::count(|s| s.bytes_sent += u64::from(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    fn pipe(&self) -> io::Result<(RawFd, RawFd)> {
        if self.pipe.get().is_none() {
            let mut fds = [0; 2];
            // SAFETY: pipe2 fills two descriptors we then own.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
                return Err(io::Error::last_os_error());
            }
            let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            // A bigger pipe moves more per splice pair; failure is harmless.
            unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
            let _ = self.pipe.set((r, w));
        }
        let (r, w) = self.pipe.get().expect("pipe just made");
        Ok((r.as_raw_fd(), w.as_raw_fd()))
    }

    /// Sets or clears `TCP_CORK`: while corked, the kernel holds partial
    /// frames so a header and the spliced records go out in full packets.
    pub fn set_cork(&self, on: bool) -> io::Result<()> {
        set_opt(
            self.fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            i32::from(on),
        )
    }

    /// Sends `len` bytes of `file` from `pos` without copying them through
    /// user space, a step of up to 1 MiB at a time. A step whose pages are
    /// all in the page cache goes out with `sendfile(2)` on this thread
    /// (the socket non-blocking, POLL_ADD waiting for room): no io-wq
    /// hand-off, and no wait for the disk unless a page is evicted between
    /// the look and the send. Any other step is
    /// SPLICEd file -> pipe through the ring, whose io-wq worker waits for
    /// the disk, then spliced pipe -> socket on this thread. Either way the
    /// TCP send runs here. ADR 0002 has the measurements.
    pub async fn send_file(&self, file: &File, pos: u64, len: u64) -> io::Result<()> {
        let end = pos
            .checked_add(len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut at = pos;
        while at < end {
            let step = (end - at).min(STEP_BYTES);
            if page_cached(file.as_raw_fd(), at, step) {
                self.sendfile_step(file, at, step).await?;
                // One connection sending a large answer from the page
                // cache must not hold the shard for all of it.
                super::yield_now().await;
            } else {
                self.splice_step(file, at, step).await?;
            }
            at += step;
        }
        Ok(())
    }

    /// Sends `len` bytes of `file` from `pos` with `sendfile(2)`, waiting
    /// on the ring for room in the socket's send buffer.
    async fn sendfile_step(&self, file: &File, pos: u64, len: u64) -> io::Result<()> {
        self.set_nonblocking()?;
        let sock = self.fd.as_raw_fd();
        let mut off =
            libc::off_t::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut left = len as usize;
        while left > 0 {
            // SAFETY: sendfile between two descriptors we hold, with a
            // pointer to our own offset.
            let n = self
                .nonblocking_send(|| unsafe {
                    libc::sendfile(sock, file.as_raw_fd(), &mut off, left)
                })
                .await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= n;
            super::count(|s| s.bytes_spliced += n as u64);
        }
        Ok(())
    }

    /// Runs a send-side system call on the non-blocking socket until it
    /// moves bytes or fails: on EAGAIN it waits on the ring for room, on
    /// EINTR it tries again. Returns what the call returned (0 included).
    async fn nonblocking_send(&self, mut call: impl FnMut() -> isize) -> io::Result<usize> {
        loop {
            let n = call();
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => self.wait_writable().await?,
                Some(libc::EINTR) => {}
                _ => return Err(e),
            }
        }
    }

    /// Sends `len` bytes of `file` from `pos`: SPLICE file -> pipe through
    /// the ring (an io-wq worker waits for the disk), then `splice(2)` pipe
    /// -> socket on this thread, POLL_ADD waiting for room.
    async fn splice_step(&self, file: &File, pos: u64, len: u64) -> io::Result<()> {
        self.set_nonblocking()?;
        let (pipe_r, pipe_w) = self.pipe()?;
        let sock = self.fd.as_raw_fd();
        let mut sent = 0u64;
        while sent < len {
            let chunk = u32::try_from(len - sent)
                .unwrap_or(u32::MAX)
                .min(PIPE_BYTES as u32);
            let fill = opcode::Splice::new(
                types::Fd(file.as_raw_fd()),
                (pos + sent) as i64,
                types::Fd(pipe_w),
                -1,
                chunk,
            )
            .flags(libc::SPLICE_F_MOVE)
            .build();
            // SAFETY: splice references no user memory.
            let (completion, ()) = unsafe { Op::submit(fill, ()) }.await;
            let mut in_pipe = completion.into_io()?;
            if in_pipe == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            // The drain runs here, not on io-wq: the pages are in the pipe
            // already, and the socket is non-blocking.
            while in_pipe > 0 {
                // SAFETY: splice between two descriptors we hold.
                let n = self
                    .nonblocking_send(|| unsafe {
                        libc::splice(
                            pipe_r,
                            std::ptr::null_mut(),
                            sock,
                            std::ptr::null_mut(),
                            in_pipe as usize,
                            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                        )
                    })
                    .await?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                in_pipe -= n as u32;
                sent += n as u64;
                super::count(|s| s.bytes_spliced += n as u64);
            }
        }
        Ok(())
    }

    /// Waits until the socket has room to send. An error or hang-up also
    /// ends the wait; the next send reports it.
    async fn wait_writable(&self) -> io::Result<()> {
        let poll =
            opcode::PollAdd::new(types::Fd(self.fd.as_raw_fd()), libc::POLLOUT as u32).build();
        // SAFETY: POLL_ADD references no user memory.
        let (completion, ()) = unsafe { Op::submit(poll, ()) }.await;
        completion.into_io().map(drop)
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        if self.nonblocking.get() {
            return Ok(());
        }
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl flag calls on our own descriptor.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        self.nonblocking.set(true);
        Ok(())
    }
}

/// `cachestat(2)` (Linux 6.5): the same number on every architecture.
const SYS_CACHESTAT: libc::c_long = 451;
/// Set once `cachestat` turned out missing, so it is not asked again.
static NO_CACHESTAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether every page of `fd` in `[pos, pos + len)` is in the page cache,
/// so `sendfile` will not wait for the disk. False where the kernel cannot
/// tell (no `cachestat`): the caller then takes the io-wq path.
pub fn page_cached(fd: RawFd, pos: u64, len: u64) -> bool {
    use std::sync::atomic::Ordering;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    if len == 0 || NO_CACHESTAT.load(Ordering::Relaxed) {
        return false;
    }
    let page = page_size();
    let pages = (pos + len).div_ceil(page) - pos / page;
    let range = Range { off: pos, len };
    let mut stat = Stat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live here.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            &range as *const Range,
            &mut stat as *mut Stat,
            0,
        )
    };
    if r < 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            NO_CACHESTAT.store(true, Ordering::Relaxed);
        }
        return false;
    }
    stat.nr_cache >= pages
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::{block_on, spawn};
    use std::io::Write;

    #[test]
    fn accept_recv_send_and_splice_a_file() {
        let dir = std::env::temp_dir().join(format!("rt-net-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("data");
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&payload))
            .expect("write payload");
        let expected = payload[1000..].to_vec();
        block_on(async move {
            let listener =
                TcpListener::bind_reuseport("127.0.0.1:0".parse().expect("addr")).expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = spawn(async move {
                let (conn, _) = listener.accept().await.expect("accept");
                let (r, buf) = conn.recv(Vec::new(), 64).await;
                assert_eq!(r.expect("recv"), 4);
                assert_eq!(&buf, b"ping");
                let file = File::open_read(&path).expect("open");
                conn.send_file(&file, 1000, 299_000).await.expect("splice");
            });
            let client = TcpStream::connect(addr).await.expect("connect");
            let (r, _) = client.send_all(b"ping".to_vec()).await;
            r.expect("send");
            let mut got = Vec::new();
            while got.len() < expected.len() {
                let (r, buf) = client.recv(got, 65536).await;
                got = buf;
                if r.expect("recv") == 0 {
                    break;
                }
            }
            assert_eq!(got, expected);
            server.await;
        });
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}

#[cfg(test)]
mod cancellation_tests {
    use super::*;
    use crate::rt::{block_on, spawn, time};
    use std::time::Duration;

    /// A receive dropped while in flight (here by a timeout) leaves its
    /// buffer with the driver until the kernel's cancel completes; the
    /// connection keeps working and nothing is lost or written into freed
    /// memory (run under the test binary's allocator checks).
    #[test]
    fn dropping_an_in_flight_receive_is_safe() {
        block_on(async {
            let listener =
                TcpListener::bind_reuseport("127.0.0.1:0".parse().expect("addr")).expect("bind");
            let addr = listener.local_addr().expect("addr");
            // The client sends only after the 50 timeouts: on a busy
            // machine they can take longer than any fixed sleep.
            let timed_out = std::rc::Rc::new(std::cell::Cell::new(false));
            let done = timed_out.clone();
            let server = spawn(async move {
                let (conn, _) = listener.accept().await.expect("accept");
                for _ in 0..50 {
                    let r = time::timeout(
                        Duration::from_millis(1),
                        conn.recv(Vec::with_capacity(4096), 4096),
                    )
                    .await;
                    assert!(r.is_err(), "nothing was sent yet");
                }
                done.set(true);
                let (r, buf) = conn.recv(Vec::new(), 16).await;
                assert_eq!(r.expect("recv"), 5);
                assert_eq!(&buf, b"after");
            });
            let client = TcpStream::connect(addr).await.expect("connect");
            while !timed_out.get() {
                time::sleep(Duration::from_millis(5)).await;
            }
            let (r, _) = client.send_all(b"after".to_vec()).await;
            r.expect("send");
            server.await;
        });
    }
}

/// `send_file`'s two paths (sendfile for cached pages, SPLICE through
/// io-wq for the rest) against a real peer: large files, odd offsets, a
/// tiny socket buffer with a slow reader, and a peer that goes away.
#[cfg(test)]
mod send_file_tests {
    use super::*;
    use crate::rt::{block_on, time};
    use std::io::{Read, Write};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    const MIB: usize = 1 << 20;

    fn payload(len: usize) -> Vec<u8> {
        // Not periodic in any power of two, so a misplaced chunk shows.
        (0..len as u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rt-sendfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("data");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(bytes).expect("write");
        f.sync_all().expect("fsync");
        path
    }

    fn remove(path: &Path) {
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    /// Drops the file's clean pages from the page cache.
    fn evict(path: &Path) {
        let f = std::fs::File::open(path).expect("open");
        // SAFETY: fadvise on a descriptor we hold.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0, "fadvise");
    }

    /// Reads `[pos, pos + len)` so those pages, and no readahead past
    /// them, are cached again.
    fn touch(path: &Path, pos: u64, len: usize) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(path).expect("open");
        // SAFETY: fadvise on a descriptor we hold.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        assert_eq!(r, 0, "fadvise");
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, pos).expect("read");
    }

    /// Whether this kernel has cachestat (6.5+): without it every step
    /// takes the splice path and the residency checks below cannot hold.
    fn cachestat_works(path: &Path) -> bool {
        touch(path, 0, 4096);
        let f = std::fs::File::open(path).expect("open");
        if page_cached(f.as_raw_fd(), 0, 4096) {
            return true;
        }
        eprintln!("cachestat(2) unavailable: only the splice path is tested");
        false
    }

    /// Runs `server` on an accepted connection in the ring while a std
    /// thread runs `client` on the other end; returns the client's result.
    fn pair<T: Send + 'static, F: std::future::Future<Output = ()>>(
        client: impl FnOnce(std::net::TcpStream) -> T + Send + 'static,
        server: impl FnOnce(TcpStream) -> F,
    ) -> T {
        block_on(async move {
            let listener =
                TcpListener::bind_reuseport("127.0.0.1:0".parse().expect("addr")).expect("bind");
            let addr = listener.local_addr().expect("addr");
            let peer = std::thread::spawn(move || {
                client(std::net::TcpStream::connect(addr).expect("connect"))
            });
            let (conn, _) = listener.accept().await.expect("accept");
            server(conn).await;
            peer.join().expect("client thread")
        })
    }

    fn read_all(mut s: std::net::TcpStream, want: usize) -> Vec<u8> {
        let mut got = vec![0u8; want];
        s.read_exact(&mut got).expect("read");
        got
    }

    #[test]
    fn large_file_at_unaligned_offsets_from_the_page_cache() {
        let bytes = payload(9 * MIB + 123);
        let path = temp_file("cached", &bytes);
        let cached = cachestat_works(&path);
        touch(&path, 0, bytes.len());
        let file = File::open_read(&path).expect("open");
        if cached {
            assert!(page_cached(file.as_raw_fd(), 0, bytes.len() as u64));
        }
        // Three ranges: inside one step, across several, to the last byte.
        let ranges = [
            (1usize, 4093usize),
            (MIB - 7, 3 * MIB + 17),
            (5 * MIB + 3, 4 * MIB + 120),
        ];
        let total: usize = ranges.iter().map(|r| r.1).sum();
        let got = pair(
            move |s| read_all(s, total),
            |conn| async move {
                for (pos, len) in ranges {
                    conn.send_file(&file, pos as u64, len as u64)
                        .await
                        .expect("send_file");
                }
            },
        );
        let want: Vec<u8> = ranges
            .iter()
            .flat_map(|&(p, l)| bytes[p..p + l].to_vec())
            .collect();
        assert!(got == want, "bytes differ");
        remove(&path);
    }

    #[test]
    fn pages_not_in_the_cache_go_through_splice_and_mix_with_cached_ones() {
        let bytes = payload(6 * MIB + 5);
        let path = temp_file("evicted", &bytes);
        let cached = cachestat_works(&path);
        evict(&path);
        let file = File::open_read(&path).expect("open");
        assert!(!page_cached(file.as_raw_fd(), 0, bytes.len() as u64));
        // Cache steps 0 and 2 only: the send alternates between sendfile
        // (which leaves the socket non-blocking) and splice.
        touch(&path, 0, MIB);
        touch(&path, 2 * MIB as u64, MIB);
        if cached {
            assert!(page_cached(file.as_raw_fd(), 0, MIB as u64));
            assert!(!page_cached(file.as_raw_fd(), MIB as u64, MIB as u64));
        }
        let len = bytes.len();
        let got = pair(
            move |s| read_all(s, len),
            |conn| async move {
                conn.send_file(&file, 0, len as u64)
                    .await
                    .expect("send_file");
            },
        );
        assert!(got == bytes, "bytes differ");
        remove(&path);
    }

    #[test]
    fn a_tiny_socket_buffer_and_a_slow_reader_lose_nothing() {
        let bytes = payload(2 * MIB + 999);
        let path = temp_file("slow", &bytes);
        evict(&path);
        // Half cached, half not: both paths meet a full send buffer.
        touch(&path, 0, MIB);
        let file = File::open_read(&path).expect("open");
        let len = bytes.len();
        let got = pair(
            move |s| {
                set_opt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 16 * 1024)
                    .expect("rcvbuf");
                let mut s = s;
                let mut got = Vec::with_capacity(len);
                let mut buf = vec![0u8; 7001];
                while got.len() < len {
                    let n = s.read(&mut buf).expect("read");
                    assert!(n > 0, "early end at {}", got.len());
                    got.extend_from_slice(&buf[..n]);
                    if got.len() % 8 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                got
            },
            |conn| async move {
                set_opt(conn.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 4096).expect("sndbuf");
                conn.send_file(&file, 0, len as u64)
                    .await
                    .expect("send_file");
            },
        );
        assert!(got == bytes, "bytes differ");
        remove(&path);
    }

    /// A peer that closes with bytes unread resets the connection; the
    /// sender gets an error on either path, not a hang.
    #[test]
    fn a_peer_closing_mid_send_is_an_error_not_a_hang() {
        let bytes = payload(32 * MIB);
        let len = bytes.len() as u64;
        let path = temp_file("closing", &bytes);
        for cached in [true, false] {
            if cached {
                touch(&path, 0, bytes.len());
            } else {
                evict(&path);
            }
            let file = File::open_read(&path).expect("open");
            pair(
                |mut s| {
                    let mut buf = vec![0u8; 64 * 1024];
                    s.read_exact(&mut buf).expect("first bytes");
                    drop(s);
                },
                |conn| async move {
                    let sent =
                        time::timeout(Duration::from_secs(20), conn.send_file(&file, 0, len))
                            .await
                            .expect("send_file must end when the peer goes away");
                    let err = sent.expect_err("the peer took 64 KiB of 32 MiB");
                    assert!(
                        matches!(
                            err.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ),
                        "cached={cached}: {err}"
                    );
                },
            );
        }
        remove(&path);
    }

    /// After `sendfile` made the socket non-blocking, the ring's receive
    /// and send still wait for the peer instead of failing with EAGAIN.
    #[test]
    fn recv_and_send_still_wait_after_a_sendfile_step() {
        let bytes = payload(MIB);
        let path = temp_file("nonblocking", &bytes);
        touch(&path, 0, bytes.len());
        let file = File::open_read(&path).expect("open");
        let len = bytes.len();
        let (got, tail) = pair(
            move |mut s| {
                let got = read_all(s.try_clone().expect("clone"), len);
                std::thread::sleep(Duration::from_millis(100));
                s.write_all(b"later").expect("write");
                let mut tail = [0u8; 4];
                s.read_exact(&mut tail).expect("read tail");
                (got, tail)
            },
            |conn| async move {
                conn.send_file(&file, 0, len as u64)
                    .await
                    .expect("send_file");
                let (r, buf) = conn.recv(Vec::new(), 16).await;
                assert_eq!(r.expect("recv waits for the peer"), 5);
                assert_eq!(&buf, b"later");
                let (r, _) = conn.send_all(b"done".to_vec()).await;
                r.expect("send");
            },
        );
        assert!(got == bytes, "bytes differ");
        assert_eq!(&tail, b"done");
        remove(&path);
    }
}
