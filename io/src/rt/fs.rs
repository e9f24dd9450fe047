//! Files through io_uring: positional reads and writes, fdatasync.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use io_uring::{opcode, types};

use super::op::Op;

/// An owned buffer the kernel may read from while it is in flight. Its bytes
/// live on the heap, so moving the value does not move them.
pub trait IoBuf: Unpin + 'static {
    fn as_ptr(&self) -> *const u8;
    fn bytes_len(&self) -> usize;
}

impl IoBuf for Vec<u8> {
    fn as_ptr(&self) -> *const u8 {
        self.as_slice().as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.len()
    }
}

impl IoBuf for Box<[u8]> {
    fn as_ptr(&self) -> *const u8 {
        (**self).as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.len()
    }
}

impl IoBuf for bytes::Bytes {
    fn as_ptr(&self) -> *const u8 {
        self.as_ref().as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.len()
    }
}

impl IoBuf for bytes::BytesMut {
    fn as_ptr(&self) -> *const u8 {
        self.as_ref().as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.len()
    }
}

/// A file whose data operations go through the thread's ring.
#[derive(Debug)]
pub struct File {
    fd: OwnedFd,
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File { fd: file.into() }
    }
}

impl File {
    /// Opens an existing file for reading and writing.
    pub fn open_rw(path: &Path) -> io::Result<File> {
        Ok(OpenOptions::new().read(true).write(true).open(path)?.into())
    }

    /// Creates a new file, failing if it exists.
    pub fn create_new(path: &Path) -> io::Result<File> {
        Ok(OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?
            .into())
    }

    /// Opens a file read-only.
    pub fn open_read(path: &Path) -> io::Result<File> {
        Ok(OpenOptions::new().read(true).open(path)?.into())
    }

    /// Size from `fstat`.
    pub fn size(&self) -> io::Result<u64> {
        let file = std::mem::ManuallyDrop::new(
            // SAFETY: borrowing our fd as a File without taking ownership.
            unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(self.as_raw_fd()) },
        );
        Ok(file.metadata()?.len())
    }

    /// Truncates or extends the file (synchronous: rare, on error paths).
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        // SAFETY: plain syscall on our own fd.
        let r = unsafe { libc::ftruncate(self.as_raw_fd(), len as libc::off_t) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes all of `buf` at `pos`; a short write is retried for the rest.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> (io::Result<()>, B) {
        let mut done = 0usize;
        let mut buf = buf;
        while done < buf.bytes_len() {
            let len = u32::try_from(buf.bytes_len() - done).unwrap_or(u32::MAX);
            // SAFETY: the pointer is inside `buf`, whose heap bytes the op owns.
            let ptr = unsafe { buf.as_ptr().add(done) };
            let entry = opcode::Write::new(types::Fd(self.as_raw_fd()), ptr, len)
                .offset(pos + done as u64)
                .build();
            let (completion, back) = unsafe { Op::submit(entry, buf) }.await;
            buf = back;
            match completion.into_io() {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => {
                    done += n as usize;
                    super::count(|s| s.bytes_written += u64::from(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Writes the buffers back to back at `pos` with one WRITEV, continuing
    /// after short writes. Returns the buffers either way.
    pub async fn writev_all_at<B: IoBuf>(
        &self,
        bufs: Vec<B>,
        pos: u64,
    ) -> (io::Result<()>, Vec<B>) {
        let total: usize = bufs.iter().map(IoBuf::bytes_len).sum();
        let mut done = 0usize;
        let mut bufs = bufs;
        while done < total {
            let iovecs = iovecs_from(&bufs, done);
            let count = u32::try_from(iovecs.len())
                .unwrap_or(u32::MAX)
                .min(libc::UIO_MAXIOV as u32);
            let entry = opcode::Writev::new(types::Fd(self.as_raw_fd()), iovecs.as_ptr(), count)
                .offset(pos + done as u64)
                .build();
            // SAFETY: the iovecs and the buffers they point into are owned by
            // the op; both are heap allocations that do not move.
            let (completion, (back, _iovecs)) = unsafe { Op::submit(entry, (bufs, iovecs)) }.await;
            bufs = back;
            match completion.into_io() {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), bufs),
                Ok(n) => {
                    done += n as usize;
                    super::count(|s| s.bytes_written += u64::from(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), bufs),
            }
        }
        (Ok(()), bufs)
    }

    /// Reads up to `buf.len()` bytes at `pos` into `buf`, returning the
    /// count (0 at end of file).
    pub async fn read_at(&self, mut buf: Vec<u8>, pos: u64) -> (io::Result<usize>, Vec<u8>) {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let entry = opcode::Read::new(types::Fd(self.as_raw_fd()), buf.as_mut_ptr(), len)
            .offset(pos)
            .build();
        // SAFETY: `buf`'s heap bytes are owned by the op until completion.
        let (completion, buf) = unsafe { Op::submit(entry, buf) }.await;
        let result = completion.into_io().map(|n| n as usize);
        if let Ok(n) = result {
            super::count(|s| s.bytes_read += n as u64);
        }
        (result, buf)
    }

    /// Reads up to `max` bytes at `pos` into the spare capacity of `buf`,
    /// appending them; returns the count (0 at end of file). No zeroing.
    pub async fn read_append_at(
        &self,
        mut buf: Vec<u8>,
        pos: u64,
        max: usize,
    ) -> (io::Result<usize>, Vec<u8>) {
        let start = buf.len();
        buf.reserve(max);
        let len = u32::try_from(max).unwrap_or(u32::MAX);
        // SAFETY: `reserve` made room for `max` bytes past `start`.
        let ptr = unsafe { buf.as_mut_ptr().add(start) };
        let entry = opcode::Read::new(types::Fd(self.as_raw_fd()), ptr, len)
            .offset(pos)
            .build();
        // SAFETY: `buf`'s heap bytes are owned by the op until completion.
        let (completion, mut buf) = unsafe { Op::submit(entry, buf) }.await;
        match completion.into_io() {
            Ok(n) => {
                // SAFETY: the kernel initialised `n` bytes after `start`.
                unsafe { buf.set_len(start + n as usize) };
                super::count(|s| s.bytes_read += u64::from(n));
                (Ok(n as usize), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Fills `buf` from `pos`, or fails with `UnexpectedEof` past the end.
    pub async fn read_exact_at(&self, buf: Vec<u8>, pos: u64) -> (io::Result<()>, Vec<u8>) {
        let want = buf.len();
        let mut filled = 0usize;
        let mut buf = buf;
        while filled < want {
            let rest = vec![0u8; want - filled];
            let (res, rest) = self.read_at(rest, pos + filled as u64).await;
            match res {
                Ok(0) => return (Err(io::ErrorKind::UnexpectedEof.into()), buf),
                Ok(n) => {
                    buf[filled..filled + n].copy_from_slice(&rest[..n]);
                    filled += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// `fdatasync` through the ring.
    pub async fn datasync(&self) -> io::Result<()> {
        let entry = opcode::Fsync::new(types::Fd(self.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build();
        let started = std::time::Instant::now();
        // SAFETY: no memory is referenced by an fsync.
        let (completion, ()) = unsafe { Op::submit(entry, ()) }.await;
        super::count(|s| s.record_fdatasync(started.elapsed().as_nanos() as u64));
        completion.into_io().map(drop)
    }

    /// Full `fsync` (used on directories, whose entries need it).
    pub async fn fsync(&self) -> io::Result<()> {
        let entry = opcode::Fsync::new(types::Fd(self.as_raw_fd())).build();
        // SAFETY: no memory is referenced by an fsync.
        let (completion, ()) = unsafe { Op::submit(entry, ()) }.await;
        completion.into_io().map(drop)
    }
}

fn iovecs_from<B: IoBuf>(bufs: &[B], mut skip: usize) -> Vec<libc::iovec> {
    let mut iovecs = Vec::with_capacity(bufs.len());
    for buf in bufs {
        let len = buf.bytes_len();
        if skip >= len {
            skip -= len;
            continue;
        }
        iovecs.push(libc::iovec {
            // SAFETY: `skip < len`, so the pointer stays inside the buffer.
            iov_base: unsafe { buf.as_ptr().add(skip) } as *mut libc::c_void,
            iov_len: len - skip,
        });
        skip = 0;
    }
    iovecs
}

/// Opens a directory so it can be fsynced after creating or removing files.
pub fn open_dir(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    Ok(OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)?
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::block_on;

    #[test]
    fn write_read_sync_roundtrip() {
        let dir = tempdir();
        let path = dir.join("f");
        block_on(async {
            let file = File::create_new(&path).expect("create");
            let (r, _) = file.write_all_at(b"hello ".to_vec(), 0).await;
            r.expect("write");
            let (r, _) = file
                .writev_all_at(vec![b"io".to_vec(), b"_uring".to_vec()], 6)
                .await;
            r.expect("writev");
            file.datasync().await.expect("datasync");
            let (r, buf) = file.read_exact_at(vec![0; 14], 0).await;
            r.expect("read");
            assert_eq!(&buf, b"hello io_uring");
            let (r, _) = file.read_exact_at(vec![0; 4], 12).await;
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
            open_dir(&dir)
                .expect("dir")
                .fsync()
                .await
                .expect("dir fsync");
        });
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rt-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
