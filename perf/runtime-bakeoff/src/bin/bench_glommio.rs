//! Candidate 1: glommio 0.9 (DataDog). Pinned `LocalExecutor` per core.
//! Files: `BufferedFile::write_at` (takes the `Vec` by value, so every write
//! hands over a fresh 64 KiB copy) and `fdatasync`. Sockets: `TcpStream`
//! `AsyncWrite`, which glommio implements as a direct `send(MSG_DONTWAIT)`
//! syscall with an io_uring poll only after EAGAIN. There is no public
//! splice/sendfile, and no public readiness wait for a raw fd, so the
//! zero-copy row is `sendfile(2)` on the stream's fd with `yield_now` on
//! EAGAIN (a busy retry).

use std::os::fd::AsRawFd;
use std::time::Instant;

use futures_lite::AsyncWriteExt;
use glommio::io::BufferedFile;
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use runtime_bakeoff::*;

const NAME: &str = "glommio";

async fn append(args: &Args) {
    let file = BufferedFile::create(&args.path).await.expect("create");
    let block = pattern_block();
    let writes = args.total_bytes / WRITE_BYTES as u64;
    let per_sync = args.workload.writes_per_sync();
    let meter = CpuMeter::start();
    let t0 = Instant::now();
    for i in 0..writes {
        let n = file
            .write_at(block.clone(), i * WRITE_BYTES as u64)
            .await
            .expect("write_at");
        assert_eq!(n, WRITE_BYTES);
        if let Some(k) = per_sync {
            if (i + 1) % k as u64 == 0 {
                file.fdatasync().await.expect("fdatasync");
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
        "BufferedFile::write_at(Vec)+fdatasync",
    );
    remove_append_file(args);
}

async fn send(args: &Args) {
    let (addr, receiver) = start_drain_receiver();
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let meter = CpuMeter::start();
    let t0 = Instant::now();
    let note = if args.workload == Workload::SendCopy {
        let file = BufferedFile::open(&args.path).await.expect("open");
        let mut pos = 0u64;
        while pos < args.total_bytes {
            let chunk = file.read_at(pos, CHUNK_BYTES).await.expect("read_at");
            assert!(!chunk.is_empty());
            sock.write_all(&chunk).await.expect("write_all");
            pos += chunk.len() as u64;
        }
        file.close().await.expect("close");
        "BufferedFile::read_at+TcpStream::write_all"
    } else {
        let file = std::fs::File::open(&args.path).expect("open");
        let mut pos = 0u64;
        let mut eagain = 0u64;
        while pos < args.total_bytes {
            let want = CHUNK_BYTES.min((args.total_bytes - pos) as usize);
            let n = sendfile_nonblocking(sock.as_raw_fd(), file.as_raw_fd(), &mut pos, want)
                .expect("sendfile");
            if n == 0 {
                eagain += 1;
                futures_lite::future::yield_now().await;
            }
        }
        eprintln!("glommio sendfile EAGAIN retries: {eagain}");
        "sendfile(2)_on_raw_fd,_yield_on_EAGAIN_(no_public_readiness_wait)"
    };
    sock.flush().await.expect("flush");
    let elapsed = t0.elapsed();
    sock.close().await.expect("close");
    drop(sock);
    let receiver_cpu = finish_receiver(receiver, args.total_bytes);
    let cpu = meter.stop(receiver_cpu);
    report(NAME, args.workload, args.total_bytes, elapsed, cpu, note);
}

fn main() {
    let args = Args::from_env();
    let handle = LocalExecutorBuilder::new(Placement::Fixed(CPU_SENDER))
        .spawn(move || async move {
            match args.workload {
                Workload::SendFile => {
                    eprintln!("send-sendfile is measured for the raw candidate only")
                }
                Workload::SendCopy | Workload::SendZeroCopy => send(&args).await,
                _ => append(&args).await,
            }
        })
        .expect("glommio executor");
    handle.join().expect("join");
}
