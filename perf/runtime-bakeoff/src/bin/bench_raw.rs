//! Candidate 5: no runtime, a direct submit/complete loop over the `io-uring`
//! crate (0.7). This is the floor a home-grown executor would start from:
//! Write + Fsync(DATASYNC) for appends, Read + Send for the copy path, and
//! Splice file->pipe->socket for the zero-copy path, all as io_uring opcodes.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Instant;

use io_uring::{opcode, squeue, types, IoUring};
use runtime_bakeoff::*;

const NAME: &str = "raw-io-uring";

/// Submits one SQE and waits for its CQE; returns the CQE result.
fn run_one(ring: &mut IoUring, sqe: squeue::Entry) -> i32 {
    // SAFETY: every buffer an SQE points to outlives this call, because we
    // wait for the matching completion before returning.
    unsafe { ring.submission().push(&sqe).expect("submission queue full") };
    ring.submit_and_wait(1).expect("io_uring_enter");
    let cqe = ring.completion().next().expect("completion");
    cqe.result()
}

fn check(res: i32, what: &str) -> usize {
    assert!(
        res >= 0,
        "{what}: {}",
        std::io::Error::from_raw_os_error(-res)
    );
    res as usize
}

fn append(ring: &mut IoUring, args: &Args) {
    let file = open_append_file(&args.path);
    let fd = types::Fd(file.as_raw_fd());
    let block = pattern_block();
    let writes = args.total_bytes / WRITE_BYTES as u64;
    let per_sync = args.workload.writes_per_sync();
    let meter = CpuMeter::start();
    let t0 = Instant::now();
    for i in 0..writes {
        let pos = i * WRITE_BYTES as u64;
        let sqe = opcode::Write::new(fd, block.as_ptr(), WRITE_BYTES as u32)
            .offset(pos)
            .build();
        assert_eq!(check(run_one(ring, sqe), "write"), WRITE_BYTES);
        if let Some(n) = per_sync {
            if (i + 1) % n as u64 == 0 {
                let sqe = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build();
                check(run_one(ring, sqe), "fsync");
            }
        }
    }
    let elapsed = t0.elapsed();
    let cpu = meter.stop(0.0);
    report(
        NAME,
        args.workload,
        args.total_bytes,
        elapsed,
        cpu,
        "Write+Fsync(DATASYNC) SQEs",
    );
    remove_append_file(args);
}

fn send(ring: &mut IoUring, args: &Args) {
    let file = std::fs::File::open(&args.path).expect("open source");
    let (addr, receiver) = start_drain_receiver();
    let sock = TcpStream::connect(addr).expect("connect");
    let sfd = types::Fd(sock.as_raw_fd());
    let ffd = types::Fd(file.as_raw_fd());
    let meter = CpuMeter::start();
    let t0 = Instant::now();
    let note = if args.workload == Workload::SendCopy {
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut pos = 0u64;
        while pos < args.total_bytes {
            let sqe = opcode::Read::new(ffd, buf.as_mut_ptr(), CHUNK_BYTES as u32)
                .offset(pos)
                .build();
            let n = check(run_one(ring, sqe), "read");
            assert!(n > 0);
            let mut sent = 0;
            while sent < n {
                let sqe = opcode::Send::new(sfd, buf[sent..].as_ptr(), (n - sent) as u32).build();
                sent += check(run_one(ring, sqe), "send");
            }
            pos += n as u64;
        }
        "Read+Send SQEs"
    } else if args.workload == Workload::SendFile {
        set_nonblocking(sfd.0);
        let mut pos = 0u64;
        let mut waits = 0u64;
        while pos < args.total_bytes {
            let want = CHUNK_BYTES.min((args.total_bytes - pos) as usize);
            let n = sendfile_nonblocking(sfd.0, ffd.0, &mut pos, want).expect("sendfile");
            if n == 0 {
                waits += 1;
                let sqe = opcode::PollAdd::new(sfd, libc::POLLOUT as u32).build();
                check(run_one(ring, sqe), "poll_add");
            }
        }
        eprintln!("raw sendfile readiness waits: {waits}");
        "sendfile(2)+POLL_ADD(POLLOUT) SQE on EAGAIN"
    } else {
        let (pr, pw) = big_pipe();
        let (prfd, pwfd) = (types::Fd(pr.as_raw_fd()), types::Fd(pw.as_raw_fd()));
        let mut pos = 0u64;
        while pos < args.total_bytes {
            let sqe = opcode::Splice::new(ffd, pos as i64, pwfd, -1, CHUNK_BYTES as u32)
                .flags(libc::SPLICE_F_MOVE)
                .build();
            let n = check(run_one(ring, sqe), "splice file->pipe");
            assert!(n > 0);
            let mut out = 0;
            while out < n {
                let sqe = opcode::Splice::new(prfd, -1, sfd, -1, (n - out) as u32)
                    .flags(libc::SPLICE_F_MOVE)
                    .build();
                out += check(run_one(ring, sqe), "splice pipe->socket");
            }
            pos += n as u64;
        }
        "SPLICE file->pipe->socket SQEs"
    };
    let elapsed = t0.elapsed();
    drop(sock);
    let receiver_cpu = finish_receiver(receiver, args.total_bytes);
    let cpu = meter.stop(receiver_cpu);
    report(NAME, args.workload, args.total_bytes, elapsed, cpu, note);
}

fn main() {
    let args = Args::from_env();
    pin_to_cpu(CPU_SENDER);
    let mut ring = IoUring::new(64).expect("io_uring_setup");
    match args.workload {
        Workload::SendCopy | Workload::SendZeroCopy | Workload::SendFile => send(&mut ring, &args),
        _ => append(&mut ring, &args),
    }
}
