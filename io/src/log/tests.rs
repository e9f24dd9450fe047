//! Unit tests of the log. Crash tests with a real child process live in
//! `io/tests/crash.rs`, the full-disk test in `io/tests/full_disk.rs`.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::BytesMut;

use super::*;
use crate::rt::block_on;

pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ringtail-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A batch of `n` records whose values name `tag`, with timestamp `ts`.
fn batch(tag: u32, n: usize, ts: i64) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("{tag}-{i}-{}", "x".repeat(40)).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    BytesMut::from(&batch::build(0, ts, &refs)[..])
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        retention_ms: None,
        ..LogConfig::default()
    }
}

async fn read_all(log: &Log, from: i64) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut next = Offset(from);
    loop {
        let r = log.read(next, 1 << 20, None).await.expect("read");
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().await.expect("bytes");
        let mut at = 0;
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).expect("header");
            batch::verify_crc(&bytes[at..at + h.size], &h).expect("crc");
            out.push(h);
            at += h.size;
        }
        next = r.next_offset;
    }
    out
}

#[test]
fn append_assigns_offsets_and_reads_whole_batches() {
    let dir = TempDir::new("append");
    block_on(async {
        let log = Log::open(&dir.0, LogConfig::default()).await.expect("open");
        let a = log.append(batch(1, 3, 1000), 5).await.expect("append");
        let b = log.append(batch(2, 2, 1001), 5).await.expect("append");
        assert_eq!((a.base_offset, a.last_offset), (Offset(0), Offset(2)));
        assert_eq!((b.base_offset, b.last_offset), (Offset(3), Offset(4)));
        let offsets = log.offsets();
        assert_eq!((offsets.written, offsets.log_end), (Offset(5), Offset(5)));
        // An offset inside the second batch returns that whole batch.
        let r = log.read(Offset(4), 1 << 20, None).await.expect("read");
        let bytes = r.slice.expect("data").read_to_vec().await.expect("bytes");
        let h = batch::parse_exact(&bytes).expect("one whole batch");
        assert_eq!((h.base_offset, h.leader_epoch), (3, 5));
        assert_eq!(r.next_offset, Offset(5));
        // At the end: nothing yet; past it or below start: out of range.
        assert!(log
            .read(Offset(5), 1024, None)
            .await
            .expect("read")
            .slice
            .is_none());
        assert!(matches!(
            log.read(Offset(6), 1024, None).await,
            Err(LogError::OffsetOutOfRange { offset: 6, .. })
        ));
        assert!(matches!(
            log.read(Offset(-1), 1024, None).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // A read bounded by a high watermark stops before it.
        let r = log
            .read(Offset(0), 1 << 20, Some(Offset(3)))
            .await
            .expect("read");
        assert_eq!(r.next_offset, Offset(3));
        assert!(log
            .read(Offset(3), 1 << 20, Some(Offset(3)))
            .await
            .expect("read")
            .slice
            .is_none());
        log.close().await.expect("close");
    });
}

#[test]
fn malformed_batches_are_refused_without_touching_the_log() {
    let dir = TempDir::new("malformed");
    block_on(async {
        let log = Log::open(&dir.0, LogConfig::default()).await.expect("open");
        log.append(batch(1, 1, 0), 0).await.expect("append");
        let mut short = batch(2, 1, 0);
        short.truncate(short.len() - 3);
        assert!(matches!(
            log.append(short, 0).await,
            Err(LogError::InvalidBatch(_))
        ));
        let mut magic = batch(3, 1, 0);
        magic[16] = 1;
        assert!(matches!(
            log.append(magic, 0).await,
            Err(LogError::InvalidBatch(BatchError::UnsupportedMagic(1)))
        ));
        assert_eq!(log.offsets().log_end, Offset(1));
        assert_eq!(read_all(&log, 0).await.len(), 1);
        log.close().await.expect("close");
    });
}

#[test]
fn segments_roll_by_size_with_kafka_names_and_reads_cross_them() {
    let dir = TempDir::new("roll");
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("open");
        for i in 0..100 {
            log.append(batch(i, 2, i64::from(i)), 0)
                .await
                .expect("append");
        }
        assert!(log.stats().segments >= 4, "{:?}", log.stats());
        let headers = read_all(&log, 0).await;
        assert_eq!(headers.len(), 100);
        assert!(headers
            .windows(2)
            .all(|w| w[1].base_offset == w[0].next_offset()));
        log.close().await.expect("close");
    });
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    assert_eq!(names[0], "00000000000000000000.log");
    assert!(names.iter().all(|n| n.len() == 24));
}

#[test]
fn reads_cut_at_whole_batches_and_never_split_one() {
    let dir = TempDir::new("cut");
    block_on(async {
        let log = Log::open(
            &dir.0,
            LogConfig {
                index_interval_bytes: 128,
                ..LogConfig::default()
            },
        )
        .await
        .expect("open");
        let mut sizes = Vec::new();
        for i in 0..50 {
            sizes.push(batch(i, 1 + (i as usize % 4), 0).len() as u64);
            log.append(batch(i, 1 + (i as usize % 4), 0), 0)
                .await
                .expect("append");
        }
        for max in [1u64, 100, 300, 1000, 5000] {
            let r = log.read(Offset(0), max, None).await.expect("read");
            let slice = r.slice.expect("data");
            let bytes = slice.read_to_vec().await.expect("bytes");
            let mut at = 0;
            let mut count = 0;
            while at < bytes.len() {
                let h = batch::parse_exact(
                    &bytes[at..at + BatchHeader::parse(&bytes[at..]).expect("h").size],
                )
                .expect("whole batch");
                at += h.size;
                count += 1;
            }
            assert!(
                slice.len <= max.max(sizes[0]),
                "max {max} got {}",
                slice.len
            );
            // The cut is tight: one more batch would not fit.
            let full: u64 = sizes[..count].iter().sum();
            assert_eq!(full, slice.len);
            if count < sizes.len() {
                assert!(full + sizes[count] > max || count == 0);
            }
        }
        log.close().await.expect("close");
    });
}

#[test]
fn group_commit_covers_many_appends_with_few_syncs() {
    let dir = TempDir::new("group");
    block_on(async {
        let log = Log::open(&dir.0, LogConfig::default()).await.expect("open");
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let log = log.clone();
            tasks.push(rt::spawn(async move {
                let info = log.append(batch(i, 1, 0), 0).await.expect("append");
                log.wait_durable(Offset(info.last_offset.0 + 1))
                    .await
                    .expect("durable");
                info
            }));
        }
        for t in tasks {
            t.await;
        }
        let offsets = log.offsets();
        assert_eq!(offsets.durable, Offset(200));
        let fsyncs = log.stats().fsyncs;
        assert!(fsyncs < 50, "200 appends took {fsyncs} fsyncs");
        log.close().await.expect("close");
    });
}

#[test]
fn timestamp_lookup_and_max_timestamp() {
    let dir = TempDir::new("time");
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("open");
        for i in 0..60i64 {
            // Timestamps rise by 10 with one out-of-order dip.
            let ts = if i == 30 { 5 } else { 1000 + i * 10 };
            log.append(batch(i as u32, 1, ts), 0).await.expect("append");
        }
        let hit = log
            .offset_for_timestamp(1255)
            .await
            .expect("lookup")
            .expect("found");
        assert_eq!(
            hit,
            TimestampOffset {
                timestamp: 1260,
                offset: Offset(26)
            }
        );
        let first = log
            .offset_for_timestamp(0)
            .await
            .expect("lookup")
            .expect("found");
        assert_eq!(first.offset, Offset(0));
        assert_eq!(
            log.offset_for_timestamp(99_999).await.expect("lookup"),
            None
        );
        let max = log.max_timestamp().await.expect("max").expect("some");
        assert_eq!(
            max,
            TimestampOffset {
                timestamp: 1590,
                offset: Offset(59)
            }
        );
        log.close().await.expect("close");
    });
}

#[test]
fn retention_by_bytes_and_time_keeps_handed_out_slices_readable() {
    let dir = TempDir::new("retention");
    let now = Rc::new(Cell::new(1_000_000i64));
    let clock_now = now.clone();
    block_on(async move {
        let config = LogConfig {
            retention_bytes: Some(8192),
            ..small_segments()
        };
        let log = Log::open_with_clock(&dir.0, config, Box::new(move || clock_now.get()))
            .await
            .expect("open");
        for i in 0..100 {
            log.append(batch(i, 2, 1_000_000), 0).await.expect("append");
        }
        let held = log
            .read(Offset(0), 1 << 20, None)
            .await
            .expect("read")
            .slice
            .expect("data");
        let before = log.stats();
        let outcome = log.apply_retention().await.expect("retention");
        assert!(outcome.segments_deleted > 0);
        let after = log.stats();
        assert!(after.size_bytes >= 8192 - 4096 && after.size_bytes < before.size_bytes);
        let start = log.offsets().log_start;
        assert!(start > Offset(0));
        assert!(matches!(
            log.read(Offset(0), 10, None).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // The slice taken before deletion still reads its bytes.
        let bytes = held
            .read_to_vec()
            .await
            .expect("deleted segment still readable");
        assert_eq!(batch::BatchHeader::parse(&bytes).expect("h").base_offset, 0);
        // Time: everything older than retention.ms goes, except the active.
        drop(log);
        let _ = outcome;
    });
    let dir = TempDir::new("retention-time");
    let now = Rc::new(Cell::new(10_000i64));
    let clock_now = now.clone();
    block_on(async move {
        let config = LogConfig {
            retention_ms: Some(1000),
            ..small_segments()
        };
        let log = Log::open_with_clock(&dir.0, config, Box::new(move || clock_now.get()))
            .await
            .expect("open");
        for i in 0..60 {
            log.append(batch(i, 2, 9_000 + i64::from(i)), 0)
                .await
                .expect("append");
        }
        let segments = log.stats().segments;
        assert_eq!(log.apply_retention().await.expect("r").segments_deleted, 0);
        now.set(20_000);
        let outcome = log.apply_retention().await.expect("r");
        assert_eq!(outcome.segments_deleted, segments - 1);
        assert_eq!(log.stats().segments, 1);
        log.close().await.expect("close");
    });
}

#[test]
fn log_start_advances_and_survives_reopen() {
    let dir = TempDir::new("start");
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("open");
        for i in 0..80 {
            log.append(batch(i, 1, 0), 0).await.expect("append");
        }
        assert!(matches!(
            log.advance_log_start(Offset(81)).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            log.advance_log_start(Offset(50)).await.expect("advance"),
            Offset(50)
        );
        let r = log.read(Offset(50), 1 << 20, None).await.expect("read");
        assert!(r.slice.is_some());
        assert!(log.read(Offset(49), 10, None).await.is_err());
        log.close().await.expect("close");
        let log = Log::open(&dir.0, small_segments()).await.expect("reopen");
        assert_eq!(log.offsets().log_start, Offset(50));
        assert_eq!(read_all(&log, 50).await.len(), 30);
        log.close().await.expect("close");
    });
}

#[test]
fn clean_reopen_reads_no_sealed_segment() {
    let dir = TempDir::new("clean");
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("open");
        for i in 0..200 {
            log.append(batch(i, 1, 0), 0).await.expect("append");
        }
        let segments = log.stats().segments;
        log.close().await.expect("close");
        let log = Log::open(&dir.0, small_segments()).await.expect("reopen");
        let stats = log.stats();
        assert_eq!(stats.segments, segments);
        assert_eq!(stats.segments_open, 1, "only the active segment is opened");
        assert_eq!(
            stats.indexes_loaded, 1,
            "only the active segment's index is loaded"
        );
        assert_eq!(stats.indexes_rebuilt, 0);
        assert_eq!(log.offsets().written, Offset(200));
        // Appends continue after the old end.
        let info = log.append(batch(999, 1, 0), 0).await.expect("append");
        assert_eq!(info.base_offset, Offset(200));
        assert_eq!(read_all(&log, 0).await.len(), 201);
        log.close().await.expect("close");
    });
}

#[test]
fn unclean_reopen_truncates_a_torn_tail() {
    let dir = TempDir::new("torn");
    let active_path = block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("open");
        for i in 0..30 {
            let info = log.append(batch(i, 1, 0), 0).await.expect("append");
            log.wait_durable(Offset(info.last_offset.0 + 1))
                .await
                .expect("durable");
        }
        let path = dir
            .0
            .join(segment::file_name(log.offsets().written.0, ".log"));
        let active = log
            .inner
            .state
            .borrow()
            .segments
            .keys()
            .next_back()
            .copied()
            .expect("active");
        // No close: the process "crashes" here.
        let _ = path;
        dir.0.join(segment::file_name(active, ".log"))
    });
    // A torn write: half a batch at the end of the active segment.
    let torn = batch(77, 3, 0);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active_path)
        .expect("open active");
    std::io::Write::write_all(&mut f, &torn[..torn.len() / 2]).expect("tear");
    drop(f);
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("recover");
        assert_eq!(log.offsets().written, Offset(30));
        assert_eq!(read_all(&log, 0).await.len(), 30);
        let info = log
            .append(batch(31, 1, 0), 0)
            .await
            .expect("append after recovery");
        assert_eq!(info.base_offset, Offset(30));
        log.close().await.expect("close");
    });
}

#[test]
fn corruption_in_a_sealed_segment_is_reported_and_truncated_on_recovery() {
    let dir = TempDir::new("corrupt");
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("open");
        for i in 0..100 {
            log.append(batch(i, 1, 0), 0).await.expect("append");
        }
        log.close().await.expect("close");
    });
    // Flip a byte inside the records of the second segment.
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir.0)
        .expect("ls")
        .map(|e| e.expect("e").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let victim = &logs[1];
    let mut bytes = std::fs::read(victim).expect("read");
    bytes[300] ^= 0x55;
    std::fs::write(victim, &bytes).expect("write");
    block_on(async {
        let log = Log::open(&dir.0, small_segments())
            .await
            .expect("clean open does not scan");
        match log.verify().await.expect("verify") {
            Some(LogError::Corrupt {
                path,
                error: BatchError::CrcMismatch { .. },
                ..
            }) => assert_eq!(&path, victim),
            other => panic!("expected a crc mismatch, got {other:?}"),
        }
        drop(log); // crash: no clean marker
    });
    // An unclean open from the start truncates at the bad batch.
    std::fs::remove_file(dir.0.join(checkpoint::RECOVERY_POINT)).expect("rm recovery point");
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("recover");
        assert!(log.verify().await.expect("verify").is_none());
        let kept = read_all(&log, 0).await;
        assert!(!kept.is_empty() && kept.len() < 100);
        assert_eq!(
            log.offsets().written.0,
            kept.last().expect("some").next_offset()
        );
        log.close().await.expect("close");
    });
}

#[test]
fn damaged_index_files_are_rebuilt_on_first_use() {
    let dir = TempDir::new("index");
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("open");
        for i in 0..100 {
            log.append(batch(i, 1, 0), 0).await.expect("append");
        }
        log.close().await.expect("close");
    });
    let index = dir.0.join(segment::file_name(0, ".index"));
    std::fs::write(&index, [0xffu8; 13]).expect("damage index");
    block_on(async {
        let log = Log::open(&dir.0, small_segments()).await.expect("open");
        assert_eq!(
            log.stats().indexes_rebuilt,
            0,
            "lazy: nothing rebuilt at open"
        );
        let r = log.read(Offset(3), 1, None).await.expect("read");
        let bytes = r.slice.expect("data").read_to_vec().await.expect("bytes");
        assert_eq!(batch::parse_exact(&bytes).expect("batch").base_offset, 3);
        assert_eq!(log.stats().indexes_rebuilt, 1);
        log.close().await.expect("close");
    });
    assert_eq!(
        std::fs::metadata(&index).expect("index").len() % 8,
        0,
        "rewritten at close"
    );
}

#[test]
fn segments_roll_by_time() {
    let dir = TempDir::new("roll-time");
    let now = Rc::new(Cell::new(0i64));
    let clock_now = now.clone();
    block_on(async move {
        let config = LogConfig {
            segment_ms: Some(1000),
            ..LogConfig::default()
        };
        let log = Log::open_with_clock(&dir.0, config, Box::new(move || clock_now.get()))
            .await
            .expect("open");
        log.append(batch(1, 1, 0), 0).await.expect("append");
        now.set(500);
        log.append(batch(2, 1, 0), 0).await.expect("append");
        assert_eq!(log.stats().segments, 1);
        now.set(1500);
        log.append(batch(3, 1, 0), 0).await.expect("append");
        assert_eq!(log.stats().segments, 2);
        now.set(3000);
        assert!(log.roll_if_due().await.expect("roll"));
        assert_eq!(log.stats().segments, 3);
        assert_eq!(read_all(&log, 0).await.len(), 3);
        log.close().await.expect("close");
    });
}

#[test]
fn bad_config_is_refused_with_the_key_named() {
    let dir = TempDir::new("config");
    block_on(async {
        let config = LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        };
        match Log::open(&dir.0, config).await {
            Err(LogError::Config(msg)) => assert!(msg.contains("segment.bytes"), "{msg}"),
            Err(other) => panic!("wrong error {other}"),
            Ok(_) => panic!("accepted segment.bytes=10"),
        }
    });
}

#[test]
fn set_config_applies_to_later_rolls() {
    let dir = TempDir::new("set-config");
    block_on(async {
        let log = Log::open(&dir.0, LogConfig::default()).await.expect("open");
        for i in 0..10 {
            log.append(batch(i, 1, 0), 0).await.expect("append");
        }
        assert_eq!(log.stats().segments, 1);
        let bad = LogConfig {
            segment_bytes: 1,
            ..LogConfig::default()
        };
        assert!(matches!(log.set_config(bad), Err(LogError::Config(_))));
        log.set_config(LogConfig {
            segment_bytes: 256,
            ..LogConfig::default()
        })
        .expect("set");
        for i in 0..10 {
            log.append(batch(i, 1, 0), 0).await.expect("append");
        }
        assert!(log.stats().segments >= 5, "{:?}", log.stats());
        assert_eq!(read_all(&log, 0).await.len(), 20);
        log.close().await.expect("close");
    });
}
