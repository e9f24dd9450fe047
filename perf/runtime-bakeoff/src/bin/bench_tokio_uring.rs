//! Candidate 2: tokio-uring 0.5. A current-thread tokio runtime whose park
//! hook drives an io_uring; no placement API, so the thread is pinned with
//! sched_setaffinity by hand. Files: `write_at(..).submit()` and
//! `sync_data` (IORING_OP_FSYNC with DATASYNC). Sockets: `TcpStream::write_all`
//! over io_uring. Zero-copy: `send_zc` exists only on `UdpSocket`; no splice
//! or sendfile. The public way in is tokio's own reactor: a non-blocking std
//! socket in `tokio::io::unix::AsyncFd`, `sendfile(2)`, and
//! `writable().await` on EAGAIN (a real readiness wait).

use std::os::fd::AsRawFd;
use std::time::Instant;

use runtime_bakeoff::*;
use tokio::io::unix::AsyncFd;
use tokio_uring::fs::File;
use tokio_uring::net::TcpStream;

const NAME: &str = "tokio-uring";

async fn append(args: &Args) {
    let file = File::create(&args.path).await.expect("create");
    let mut block = pattern_block();
    let writes = args.total_bytes / WRITE_BYTES as u64;
    let per_sync = args.workload.writes_per_sync();
    let meter = CpuMeter::start();
    let t0 = Instant::now();
    for i in 0..writes {
        let (res, buf) = file.write_at(block, i * WRITE_BYTES as u64).submit().await;
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

async fn send(args: &Args) {
    let (addr, receiver) = start_drain_receiver();
    let meter;
    let t0;
    let note = if args.workload == Workload::SendCopy {
        let sock = TcpStream::connect(addr).await.expect("connect");
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
        let std_sock = std::net::TcpStream::connect(addr).expect("connect");
        std_sock.set_nonblocking(true).expect("nonblocking");
        // SAFETY: the AsyncFd owns the socket and nothing else closes its fd.
        let afd =
            unsafe { AsyncFd::register(std_sock) }.unwrap_or_else(|_| panic!("AsyncFd::register"));
        let file = std::fs::File::open(&args.path).expect("open");
        meter = CpuMeter::start();
        t0 = Instant::now();
        let mut pos = 0u64;
        while pos < args.total_bytes {
            let want = CHUNK_BYTES.min((args.total_bytes - pos) as usize);
            let n = sendfile_nonblocking(afd.as_raw_fd(), file.as_raw_fd(), &mut pos, want)
                .expect("sendfile");
            if n == 0 {
                let mut guard = afd.writable().await.expect("writable");
                guard.clear_ready();
            }
        }
        "sendfile(2)+tokio_AsyncFd::writable_on_EAGAIN"
    };
    let elapsed = t0.elapsed();
    let receiver_cpu = finish_receiver(receiver, args.total_bytes);
    let cpu = meter.stop(receiver_cpu);
    report(NAME, args.workload, args.total_bytes, elapsed, cpu, note);
}

fn main() {
    let args = Args::from_env();
    pin_to_cpu(CPU_SENDER);
    tokio_uring::start(async move {
        match args.workload {
            Workload::SendFile => eprintln!("send-sendfile is measured for the raw candidate only"),
            Workload::SendCopy | Workload::SendZeroCopy => send(&args).await,
            _ => append(&args).await,
        }
    });
}
