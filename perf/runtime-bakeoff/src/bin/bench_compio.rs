//! Candidate 4: compio 0.19. One `Runtime` per thread, pinned with
//! `RuntimeBuilder::thread_affinity`. Files: `AsyncWriteAt::write_at`
//! (owned buffer, IORING_OP_WRITE) and `sync_data` (IORING_OP_FSYNC with
//! DATASYNC). Sockets: `AsyncWriteExt::write_all` over io_uring. Zero-copy:
//! the driver's op types are public (`compio::driver::op::{Splice, SendZc}`)
//! and any op can be awaited with `compio::runtime::submit`, so
//! file->pipe->socket is two io_uring SPLICE ops with explicit offsets, no
//! hacks.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Instant;

use compio::driver::op::{Splice, SpliceFlags};
use compio::fs::File;
use compio::io::{AsyncReadAt, AsyncWriteAt, AsyncWriteExt};
use compio::net::TcpStream;
use compio::BufResult;
use runtime_bakeoff::*;

const NAME: &str = "compio";

async fn append(args: &Args) {
    let mut file = File::create(&args.path).await.expect("create");
    let mut block = pattern_block();
    let writes = args.total_bytes / WRITE_BYTES as u64;
    let per_sync = args.workload.writes_per_sync();
    let meter = CpuMeter::start();
    let t0 = Instant::now();
    for i in 0..writes {
        let BufResult(res, buf) = file.write_at(block, i * WRITE_BYTES as u64).await;
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
        "AsyncWriteAt::write_at(owned buf)+sync_data",
    );
    remove_append_file(args);
}

fn dup_fd(fd: libc::c_int) -> Rc<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup returns a new fd that we then own.
    let d = unsafe { libc::dup(fd) };
    assert!(d >= 0, "dup");
    Rc::new(unsafe { OwnedFd::from_raw_fd(d) })
}

async fn splice(fd_in: &Rc<OwnedFd>, off_in: i64, fd_out: &Rc<OwnedFd>, len: usize) -> usize {
    let op = Splice::new(
        fd_in.clone(),
        off_in,
        fd_out.clone(),
        -1,
        len,
        SpliceFlags::MOVE,
    );
    let BufResult(res, _) = compio::runtime::submit(op).await;
    res.expect("splice")
}

async fn send(args: &Args) {
    let (addr, receiver) = start_drain_receiver();
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let meter;
    let t0;
    let note = if args.workload == Workload::SendCopy {
        let file = File::open(&args.path).await.expect("open");
        let mut buf = Vec::with_capacity(CHUNK_BYTES);
        meter = CpuMeter::start();
        t0 = Instant::now();
        let mut pos = 0u64;
        while pos < args.total_bytes {
            buf.clear();
            let BufResult(res, b) = file.read_at(buf, pos).await;
            let n = res.expect("read_at");
            assert!(n > 0 && b.len() == n);
            let BufResult(res, b) = sock.write_all(b).await;
            res.expect("write_all");
            buf = b;
            pos += n as u64;
        }
        file.close().await.expect("close");
        "File::read_at+TcpStream::write_all"
    } else {
        let file = std::fs::File::open(&args.path).expect("open");
        let file_fd = Rc::new(OwnedFd::from(file));
        let sock_fd = dup_fd(sock.as_raw_fd());
        let (pr, pw) = big_pipe();
        let (pr, pw) = (Rc::new(pr), Rc::new(pw));
        meter = CpuMeter::start();
        t0 = Instant::now();
        let mut pos = 0u64;
        while pos < args.total_bytes {
            let n = splice(&file_fd, pos as i64, &pw, CHUNK_BYTES).await;
            assert!(n > 0);
            let mut out = 0;
            while out < n {
                out += splice(&pr, -1, &sock_fd, n - out).await;
            }
            pos += n as u64;
        }
        drop(sock_fd);
        "compio::runtime::submit(driver::op::Splice)_file->pipe->socket"
    };
    let elapsed = t0.elapsed();
    shutdown_write(sock.as_raw_fd());
    let receiver_cpu = finish_receiver(receiver, args.total_bytes);
    let cpu = meter.stop(receiver_cpu);
    report(NAME, args.workload, args.total_bytes, elapsed, cpu, note);
}

fn main() {
    let args = Args::from_env();
    let rt = compio::runtime::RuntimeBuilder::new()
        .thread_affinity(HashSet::from([CPU_SENDER]))
        .build()
        .expect("compio runtime");
    eprintln!("compio driver: {:?}", rt.driver_type());
    rt.block_on(async move {
        match args.workload {
            Workload::SendFile => eprintln!("send-sendfile is measured for the raw candidate only"),
            Workload::SendCopy | Workload::SendZeroCopy => send(&args).await,
            _ => append(&args).await,
        }
    });
}
