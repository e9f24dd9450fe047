//! Shared harness for the runtime bake-off (ADR 0001).
//!
//! # Layout
//!
//! - `Workload` / `Args`: the command line every candidate binary accepts, so
//!   that `run.sh` drives all five the same way.
//! - `pin_to_cpu`, `thread_cpu_seconds`: pinning and per-thread CPU accounting
//!   (getrusage RUSAGE_THREAD) for the sender/appender thread.
//! - `start_drain_receiver`: a plain std thread on the other core that accepts
//!   one loopback connection and reads until EOF. It is the same for every
//!   candidate, so only the sending side differs.
//! - `prepare_source_file`, `report`: the 1 GiB source file for workload C and
//!   the one-line `RESULT` output that `run.sh` parses.
//!
//! Every candidate does the same operations in the same order: appends are
//! serial (one write in flight, like fio's psync engine), a group commit is
//! `fdatasync` after every `writes_per_sync` writes, and transfers move
//! `CHUNK_BYTES` per step.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

/// One append write, as in the issue (Kafka batches land in 64 KiB writes).
pub const WRITE_BYTES: usize = 64 * 1024;
/// Bytes moved per read/send or per splice step in workload C.
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Pipe capacity for splice paths; equal to `CHUNK_BYTES` so one splice into
/// the pipe can carry a whole chunk.
pub const PIPE_BYTES: usize = CHUNK_BYTES;
const _: () = assert!(WRITE_BYTES.is_power_of_two());
const _: () = assert!(CHUNK_BYTES.is_multiple_of(WRITE_BYTES));

/// The CPU the sender/appender runs on, and the one the receiver runs on.
pub const CPU_SENDER: usize = 0;
pub const CPU_RECEIVER: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A: 64 KiB writes, fdatasync after every 4 (256 KiB per sync).
    AppendSync4,
    /// A': 64 KiB writes, fdatasync after every 16 (1 MiB per sync).
    AppendSync16,
    /// B: 64 KiB buffered writes, no sync.
    AppendBuffered,
    /// C(i): read into a user buffer, then send.
    SendCopy,
    /// C(ii): the candidate's zero-copy file->socket path.
    SendZeroCopy,
    /// C(ii'), raw candidate only: sendfile(2) on a non-blocking socket with
    /// an io_uring POLL_ADD readiness wait on EAGAIN.
    SendFile,
}

impl Workload {
    pub fn parse(name: &str) -> Option<Workload> {
        match name {
            "append-sync4" => Some(Workload::AppendSync4),
            "append-sync16" => Some(Workload::AppendSync16),
            "append-buffered" => Some(Workload::AppendBuffered),
            "send-copy" => Some(Workload::SendCopy),
            "send-zc" => Some(Workload::SendZeroCopy),
            "send-sendfile" => Some(Workload::SendFile),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::AppendSync4 => "append-sync4",
            Workload::AppendSync16 => "append-sync16",
            Workload::AppendBuffered => "append-buffered",
            Workload::SendCopy => "send-copy",
            Workload::SendZeroCopy => "send-zc",
            Workload::SendFile => "send-sendfile",
        }
    }

    pub fn is_send(self) -> bool {
        matches!(
            self,
            Workload::SendCopy | Workload::SendZeroCopy | Workload::SendFile
        )
    }

    /// Writes between two fdatasync calls; `None` means never sync.
    pub fn writes_per_sync(self) -> Option<usize> {
        match self {
            Workload::AppendSync4 => Some(4),
            Workload::AppendSync16 => Some(16),
            _ => None,
        }
    }

    /// Default size from the issue; `BAKEOFF_MIB` overrides it (smoke tests,
    /// strace runs).
    pub fn total_bytes(self) -> u64 {
        let mib: u64 = match self {
            Workload::AppendSync4 | Workload::AppendSync16 => 1024,
            Workload::AppendBuffered => 2048,
            Workload::SendCopy | Workload::SendZeroCopy | Workload::SendFile => 1024,
        };
        let mib = std::env::var("BAKEOFF_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(mib);
        mib * 1024 * 1024
    }
}

/// `<bin> <workload> <path>`: for appends `path` is the file to create (it
/// is removed afterwards); for sends it is the pre-warmed source file.
pub struct Args {
    pub workload: Workload,
    pub path: PathBuf,
    pub total_bytes: u64,
}

impl Args {
    pub fn from_env() -> Args {
        let argv: Vec<String> = std::env::args().collect();
        let usage = "usage: bench-<candidate> <append-sync4|append-sync16|append-buffered|send-copy|send-zc|send-sendfile> <path>";
        if argv.len() != 3 {
            eprintln!("{usage}");
            std::process::exit(2);
        }
        let workload = Workload::parse(&argv[1]).unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2);
        });
        let path = PathBuf::from(&argv[2]);
        let total_bytes = workload.total_bytes();
        if workload.is_send() {
            prepare_source_file(&path, total_bytes);
        } else {
            let _ = std::fs::remove_file(&path);
        }
        assert!(total_bytes.is_multiple_of(CHUNK_BYTES as u64));
        Args {
            workload,
            path,
            total_bytes,
        }
    }
}

/// A 64 KiB block of non-zero bytes (no filesystem or device can shortcut it).
pub fn pattern_block() -> Vec<u8> {
    (0..WRITE_BYTES).map(|i| (i % 251) as u8 + 1).collect()
}

pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is a plain bitset; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(rc, 0, "sched_setaffinity({cpu}) failed");
    }
}

/// User + system CPU seconds of the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_THREAD)
}

/// User + system CPU seconds of the whole process, including io_uring's
/// io-wq kernel workers and any runtime helper threads: work that an
/// io_uring runtime punts off the submitting thread is only visible here.
pub fn process_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        let rc = libc::getrusage(who, &mut ru);
        assert_eq!(rc, 0);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU accounting for one timed run: the sender/appender thread alone, and
/// the whole process less the drain receiver.
pub struct CpuMeter {
    thread0: f64,
    process0: f64,
}

pub struct CpuUsed {
    pub thread_s: f64,
    pub process_s: f64,
}

impl CpuMeter {
    pub fn start() -> CpuMeter {
        CpuMeter {
            thread0: thread_cpu_seconds(),
            process0: process_cpu_seconds(),
        }
    }

    /// Call on the thread that called `start`; `receiver_s` is the receiver
    /// thread's own CPU (0 for appends).
    pub fn stop(&self, receiver_s: f64) -> CpuUsed {
        CpuUsed {
            thread_s: thread_cpu_seconds() - self.thread0,
            process_s: process_cpu_seconds() - self.process0 - receiver_s,
        }
    }
}

/// Accepts one connection on 127.0.0.1 and drains it; returns bytes read and
/// the receiver thread's CPU seconds.
pub fn start_drain_receiver() -> (SocketAddr, JoinHandle<(u64, f64)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local_addr");
    assert!(addr.ip().is_loopback());
    let handle = std::thread::spawn(move || {
        pin_to_cpu(CPU_RECEIVER);
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut total: u64 = 0;
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("receiver read: {e}"),
            }
        }
        (total, thread_cpu_seconds())
    });
    (addr, handle)
}

/// Creates `path` with `bytes` of pattern data unless it already has that
/// size, then reads it once so it is in page cache.
pub fn prepare_source_file(path: &Path, bytes: u64) {
    let ok = std::fs::metadata(path)
        .map(|m| m.len() == bytes)
        .unwrap_or(false);
    if !ok {
        let mut f = std::fs::File::create(path).expect("create source file");
        let block = pattern_block();
        for _ in 0..bytes / WRITE_BYTES as u64 {
            f.write_all(&block).expect("write source file");
        }
        f.sync_all().expect("sync source file");
    }
    if std::env::var_os("BAKEOFF_SKIP_WARM").is_some() {
        // Traced runs: the file is already cached, and the warm-up reads
        // would be counted as the candidate's syscalls.
        return;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .open(path)
        .expect("open source");
    let mut buf = vec![0u8; CHUNK_BYTES];
    while f.read(&mut buf).expect("warm read") > 0 {}
}

pub fn open_append_file(path: &Path) -> std::fs::File {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("create append file")
}

/// A pipe with `PIPE_BYTES` capacity, for splice paths. Returns (read, write).
pub fn big_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: fds were just created and are owned by nobody else.
    let (r, w) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    set_pipe_size(w.as_raw_fd());
    (r, w)
}

pub fn set_pipe_size(fd: libc::c_int) {
    // SAFETY: fcntl on a pipe fd we hold.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES as libc::c_int) };
    assert!(rc >= PIPE_BYTES as libc::c_int, "F_SETPIPE_SZ: {rc}");
}

/// sendfile(2) on a non-blocking socket: returns Ok(0) on EAGAIN so the caller
/// can wait for writability with whatever its runtime offers.
pub fn sendfile_nonblocking(
    sock: libc::c_int,
    file: libc::c_int,
    offset: &mut u64,
    len: usize,
) -> std::io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: plain syscall on fds the caller holds.
    let n = unsafe { libc::sendfile(sock, file, &mut off, len) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Ok(0);
        }
        return Err(e);
    }
    *offset = off as u64;
    Ok(n as usize)
}

pub fn set_nonblocking(fd: libc::c_int) {
    // SAFETY: fcntl on an fd the caller holds.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert!(flags >= 0);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
    }
}

/// Sends FIN synchronously. Runtimes that close fds with an io_uring op on
/// drop would otherwise never close while we block in `finish_receiver`.
pub fn shutdown_write(fd: libc::c_int) {
    // SAFETY: shutdown on a socket fd the caller holds.
    let rc = unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    assert_eq!(rc, 0, "shutdown: {}", std::io::Error::last_os_error());
}

/// Runs after a transfer: joins the receiver, checks it got every byte and
/// returns its CPU seconds.
pub fn finish_receiver(handle: JoinHandle<(u64, f64)>, expected: u64) -> f64 {
    let (got, cpu_s) = handle.join().expect("receiver thread");
    assert_eq!(
        got, expected,
        "receiver got {got} bytes, sender sent {expected}"
    );
    cpu_s
}

/// Prints the line `run.sh` parses. MB is 10^6 bytes, as fio and iperf3 print.
/// `thread` is the sender/appender thread's CPU, `proc` the process's less
/// the receiver's, both in CPU seconds per GB (10^9 bytes) moved.
pub fn report(
    candidate: &str,
    workload: Workload,
    bytes: u64,
    elapsed: Duration,
    cpu: CpuUsed,
    note: &str,
) {
    let secs = elapsed.as_secs_f64();
    let mb_s = bytes as f64 / 1e6 / secs;
    let gb = bytes as f64 / 1e9;
    println!(
        "RESULT candidate={candidate} workload={} bytes={bytes} secs={secs:.3} mb_s={mb_s:.1} thread_cpu_s_per_gb={:.3} proc_cpu_s_per_gb={:.3} note={}",
        workload.name(),
        cpu.thread_s / gb,
        cpu.process_s / gb,
        note.replace(' ', "_"),
    );
}

/// Removes the append file after a run (the issue caps data at 3 GiB).
pub fn remove_append_file(args: &Args) {
    if !args.workload.is_send() {
        let _ = std::fs::remove_file(&args.path);
    }
}
