//! Candidate 3: monoio 0.2 (ByteDance), io_uring driver only. Pinned with
//! `monoio::utils::bind_to_cpu_set`. Files: `File::write_at` (owned buffer)
//! and `sync_data` (IORING_OP_FSYNC with DATASYNC). Sockets: io_uring
//! send via `AsyncWriteRentExt::write_all`. Zero-copy (feature `splice`):
//! `SpliceSource::splice_to_pipe` / `SpliceDestination::splice_from_pipe`
//! are io_uring SPLICE ops, but only sockets implement `AsReadFd`, not
//! `monoio::fs::File`, and the op always passes offset -1. The file side is
//! therefore reached by wrapping a dup of the file fd in a `UnixStream`
//! (a type pun that uses and advances the file position); the pipe from
//! `new_pipe` has no fd accessor, so its capacity is raised by scanning our
//! fds for FIFOs. Both are hacks around the public API.

use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Instant;

use monoio::fs::File;
use monoio::io::splice::{SpliceDestination, SpliceSource};
use monoio::io::AsyncWriteRentExt;
use monoio::net::{TcpStream, UnixStream};
use monoio::{IoUringDriver, RuntimeBuilder};
use runtime_bakeoff::*;

const NAME: &str = "monoio";

async fn append(args: &Args) {
    let file = File::create(&args.path).await.expect("create");
    let mut block = pattern_block();
    let writes = args.total_bytes / WRITE_BYTES as u64;
    let per_sync = args.workload.writes_per_sync();
    let meter = CpuMeter::start();
    let t0 = Instant::now();
    for i in 0..writes {
        let (res, buf) = file.write_at(block, i * WRITE_BYTES as u64).await;
        block = buf;
        assert_eq!(res.expect("write_at"), WRITE_BYTES);
        if let Some(k) = per_sync {
            if (i + 1) % k as u64 == 0 {
                file.sync_data().await.expect("sync_data");
            }
        }
    }
    let elapsed = t0.elapsed();
    let cpu = meter.stop(0.0);
    file.close().await.expect("close");
    report(
        NAME,
        args.workload,
        args.total_bytes,
        elapsed,
        cpu,
        "File::write_at(owned buf)+sync_data",
    );
    remove_append_file(args);
}

/// Raises every pipe we hold to `PIPE_BYTES` (monoio's `Pipe` hides its fd).
fn grow_all_pipes() {
    for fd in 3..256 {
        // SAFETY: fstat on an fd number; failure just means it is not open.
        let is_fifo = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
        };
        if is_fifo {
            set_pipe_size(fd);
        }
    }
}

async fn send(args: &Args) {
    let (addr, receiver) = start_drain_receiver();
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let meter;
    let t0;
    let note = if args.workload == Workload::SendCopy {
        let file = File::open(&args.path).await.expect("open");
        let mut buf = vec![0u8; CHUNK_BYTES];
        meter = CpuMeter::start();
        t0 = Instant::now();
        let mut pos = 0u64;
        while pos < args.total_bytes {
            let (res, b) = file.read_at(buf, pos).await;
            let n = res.expect("read_at");
            assert!(n > 0);
            let (res, b) = sock.write_all(b).await;
            res.expect("write_all");
            buf = b;
            pos += n as u64;
        }
        file.close().await.expect("close");
        "File::read_at+TcpStream::write_all"
    } else {
        let file = std::fs::File::open(&args.path).expect("open");
        // SAFETY: dup gives a new fd that the UnixStream then owns.
        let dup = unsafe { libc::dup(file.as_raw_fd()) };
        assert!(dup >= 0);
        let std_pun = unsafe { std::os::unix::net::UnixStream::from_raw_fd(dup) };
        let mut src = UnixStream::from_std(std_pun).expect("pun file fd");
        let (mut pipe_r, mut pipe_w) = monoio::net::unix::new_pipe().expect("pipe");
        grow_all_pipes();
        meter = CpuMeter::start();
        t0 = Instant::now();
        let mut pos = 0u64;
        while pos < args.total_bytes {
            let n = src
                .splice_to_pipe(&mut pipe_w, CHUNK_BYTES as u32)
                .await
                .expect("splice in");
            assert!(n > 0);
            let mut out = 0;
            while out < n {
                out += sock
                    .splice_from_pipe(&mut pipe_r, n - out)
                    .await
                    .expect("splice out");
            }
            pos += n as u64;
        }
        "io_uring_SPLICE_via_splice_to_pipe/splice_from_pipe_(file_fd_punned_as_UnixStream)"
    };
    let elapsed = t0.elapsed();
    shutdown_write(sock.as_raw_fd());
    let receiver_cpu = finish_receiver(receiver, args.total_bytes);
    let cpu = meter.stop(receiver_cpu);
    report(NAME, args.workload, args.total_bytes, elapsed, cpu, note);
}

fn main() {
    let args = Args::from_env();
    monoio::utils::bind_to_cpu_set([CPU_SENDER]).expect("bind_to_cpu_set");
    let mut rt = RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(256)
        .build()
        .expect("monoio io_uring runtime");
    rt.block_on(async move {
        match args.workload {
            Workload::SendFile => eprintln!("send-sendfile is measured for the raw candidate only"),
            Workload::SendCopy | Workload::SendZeroCopy => send(&args).await,
            _ => append(&args).await,
        }
    });
}
