//! TCP through the ring: accept, connect, recv, send, and zero-copy
//! file-to-socket transfer with SPLICE through a pipe.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use super::fs::{File, IoBuf};
use super::op::Op;

/// Bytes a pipe holds between the two halves of a splice.
const PIPE_BYTES: i32 = 1 << 20;

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
        };
        stream.set_nodelay()?;
        Ok(stream)
    }

    /// Wraps a std stream (e.g. one connected synchronously in a test).
    pub fn from_std(stream: StdStream) -> TcpStream {
        TcpStream {
            fd: stream.into(),
            pipe: std::cell::OnceCell::new(),
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
    /// user space: SPLICE file -> pipe, then SPLICE pipe -> socket.
    pub async fn send_file(&self, file: &File, pos: u64, len: u64) -> io::Result<()> {
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
            while in_pipe > 0 {
                let drain =
                    opcode::Splice::new(types::Fd(pipe_r), -1, types::Fd(sock), -1, in_pipe)
                        .flags(libc::SPLICE_F_MOVE)
                        .build();
                let (completion, ()) = unsafe { Op::submit(drain, ()) }.await;
                let n = completion.into_io()?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                in_pipe -= n;
                sent += u64::from(n);
                super::count(|s| s.bytes_spliced += u64::from(n));
            }
        }
        Ok(())
    }
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
                let (r, buf) = conn.recv(Vec::new(), 16).await;
                assert_eq!(r.expect("recv"), 5);
                assert_eq!(&buf, b"after");
            });
            let client = TcpStream::connect(addr).await.expect("connect");
            time::sleep(Duration::from_millis(100)).await;
            let (r, _) = client.send_all(b"after".to_vec()).await;
            r.expect("send");
            server.await;
        });
    }
}
