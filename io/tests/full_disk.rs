//! A full disk: appends fail with the OS error, the partial write is cut
//! back, nothing stored is lost, and appends resume once space is freed.
//!
//! The disk is a real 2 MiB tmpfs (ENOSPC) when this process may mount one
//! (root, as in CI); otherwise `RLIMIT_FSIZE` caps file sizes (EFBIG). The
//! test prints which one it used.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::BytesMut;
use ringtail_io::log::{batch, Log, LogConfig, LogError, Offset};
use ringtail_io::rt;

struct Disk {
    dir: PathBuf,
    mounted: bool,
}

impl Drop for Disk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn small_disk() -> Disk {
    let dir = std::env::temp_dir().join(format!("ringtail-full-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    Disk { dir, mounted }
}

fn limit_file_size(bytes: u64) {
    // SAFETY: process-wide settings; this test binary runs this one test.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

fn lift_file_size_limit() {
    unsafe {
        let limit = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

fn record_batch(i: u32) -> BytesMut {
    let value = vec![(i % 251) as u8; 3000];
    BytesMut::from(&batch::build(0, 0, &[&value, &value])[..])
}

async fn count_batches(log: &Log) -> usize {
    let mut n = 0;
    let mut next = log.offsets().log_start;
    loop {
        let r = log.read(next, 1 << 20, None).await.expect("read");
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().await.expect("bytes");
        let mut at = 0;
        while at < bytes.len() {
            let h = batch::parse_exact(
                &bytes[at..at + batch::BatchHeader::parse(&bytes[at..]).expect("h").size],
            )
            .expect("whole batch");
            batch::verify_crc(&bytes[at..at + h.size], &h).expect("crc");
            at += h.size;
            n += 1;
        }
        next = r.next_offset;
    }
    n
}

fn filler(dir: &Path) -> PathBuf {
    dir.join("filler")
}

#[test]
fn a_full_disk_refuses_appends_precisely_and_loses_nothing() {
    // Different fillers make the disk fill up at different moments: in a
    // data write, in a segment roll, in an index write.
    for filler_kib in [100u64, 256, 700, 950, 1020, 1100, 1500] {
        fill_and_recover(filler_kib);
    }
}

fn fill_and_recover(filler_kib: u64) {
    let disk = small_disk();
    let log_dir = disk.dir.join("topic-0");
    let mode = if disk.mounted {
        "tmpfs size=2m (ENOSPC)"
    } else {
        "RLIMIT_FSIZE (EFBIG)"
    };
    println!("full-disk test using {mode}, filler {filler_kib} KiB");
    if disk.mounted {
        std::fs::write(filler(&disk.dir), vec![0u8; (filler_kib * 1024) as usize]).expect("filler");
    }
    rt::block_on(async {
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..LogConfig::default()
        };
        let log = Log::open(&log_dir, config.clone()).await.expect("open");
        if !disk.mounted {
            limit_file_size((filler_kib * 1024).max(8192));
        }
        let mut acked = 0usize;
        let error = loop {
            match log.append(record_batch(acked as u32), 0).await {
                Ok(info) => {
                    assert_eq!(info.base_offset, Offset(2 * acked as i64));
                    acked += 1;
                    assert!(acked < 10_000, "the disk never filled");
                }
                Err(e) => break e,
            }
        };
        match &error {
            LogError::Io { source, .. } => {
                let errno = source.raw_os_error();
                assert!(
                    errno == Some(libc::ENOSPC) || errno == Some(libc::EFBIG),
                    "unexpected error {source}"
                );
            }
            other => panic!("expected the OS error, got {other}"),
        }
        println!("disk full after {acked} batches: {error}");
        // Nothing stored is lost or damaged; the end did not move.
        assert_eq!(log.offsets().written, Offset(2 * acked as i64));
        assert_eq!(log.offsets().log_end, Offset(2 * acked as i64));
        assert!(log.verify().await.expect("verify").is_none());
        assert_eq!(count_batches(&log).await, acked);
        // Free space; appends continue at the next offset.
        if disk.mounted {
            std::fs::remove_file(filler(&disk.dir)).expect("free space");
        } else {
            lift_file_size_limit();
        }
        let info = log
            .append(record_batch(9999), 0)
            .await
            .expect("append after freeing space");
        assert_eq!(info.base_offset, Offset(2 * acked as i64));
        log.wait_durable(Offset(info.last_offset.0 + 1))
            .await
            .expect("durable");
        log.close().await.expect("close");
        let log = Log::open(&log_dir, config).await.expect("reopen");
        assert_eq!(count_batches(&log).await, acked + 1);
        log.close().await.expect("close");
    });
    let _ = io::stdout();
}
