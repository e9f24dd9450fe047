//! Compaction: the batch filter, whole passes over a real log, and the
//! swap's crash safety (every intermediate state left on disk, reopened).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::BytesMut;

use super::*;
use crate::log::tests::TempDir;
use crate::log::{Log, LogConfig, Offset};
use crate::rt::block_on;

type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of a batch: (offset, key, value).
fn records_of(bytes: &[u8]) -> Vec<Rec> {
    let h = BatchHeader::parse(bytes).expect("header");
    batch::verify_crc(&bytes[..h.size], &h).expect("crc");
    let codec = (i16_at(bytes, ATTRIBUTES_AT) & CODEC_MASK) as u8;
    let data = codec::decompress(codec, &bytes[HEADER_BYTES..h.size]).expect("decompress");
    let records = parse_records(&data, h.records_count).expect("records");
    records
        .iter()
        .map(|r| {
            let value = if r.tombstone {
                None
            } else {
                // The value is the record's tail before the headers count.
                let mut p = 1;
                let body_start = {
                    let mut at = 0;
                    varint(r.bytes, &mut at).expect("len");
                    at
                };
                let body = &r.bytes[body_start..];
                varint(body, &mut p);
                varint(body, &mut p);
                let k = varint(body, &mut p).expect("key len");
                if k > 0 {
                    p += k as usize;
                }
                let v = varint(body, &mut p).expect("value len") as usize;
                Some(body[p..p + v].to_vec())
            };
            (
                h.base_offset + r.offset_delta,
                r.key.map(<[u8]>::to_vec),
                value,
            )
        })
        .collect()
}

fn kv<'a>(k: &'a str, v: Option<&'a str>) -> KeyValue<'a> {
    (Some(k.as_bytes()), v.map(str::as_bytes))
}

fn filter(bytes: &[u8], keep_empty: bool, drop: &[i64]) -> (Filtered, FilterCounts) {
    let h = BatchHeader::parse(bytes).expect("header");
    let mut counts = FilterCounts::default();
    let f = filter_batch(bytes, &h, keep_empty, &mut counts, |_, offset| {
        if drop.contains(&offset) {
            Verdict::Superseded
        } else {
            Verdict::Keep
        }
    })
    .expect("filter");
    (f, counts)
}

#[test]
fn a_partly_kept_batch_keeps_base_offset_last_offset_delta_and_producer_fields() {
    let recs = [
        kv("a", Some("1")),
        kv("b", Some("2")),
        kv("a", Some("3")),
        kv("c", Some("4")),
    ];
    let original = build_batch(100, 5_000, &recs, codec::NONE, Some((7, 2, 40)));
    let (f, counts) = filter(&original, false, &[100, 103]);
    assert_eq!(counts.superseded, 2);
    let Filtered::Rewritten(out) = f else {
        panic!("expected a rewrite, got {f:?}")
    };
    let h = BatchHeader::parse(&out).expect("header");
    assert_eq!(h.size, out.len());
    assert_eq!(h.base_offset, 100);
    assert_eq!(h.last_offset_delta, 3, "lastOffsetDelta is kept");
    assert_eq!(h.records_count, 2);
    assert_eq!(h.max_timestamp, 5_002, "max timestamp of the kept records");
    assert_eq!(producer_id(&out), 7);
    assert_eq!(&out[51..57], &original[51..57], "epoch and base sequence");
    assert_eq!(
        records_of(&out),
        vec![
            (101, Some(b"b".to_vec()), Some(b"2".to_vec())),
            (102, Some(b"a".to_vec()), Some(b"3".to_vec())),
        ]
    );
    // All kept: unchanged; none kept: removed or an empty header.
    assert_eq!(filter(&original, false, &[]).0, Filtered::Unchanged);
    assert_eq!(
        filter(&original, false, &[100, 101, 102, 103]).0,
        Filtered::Removed
    );
    let (f, _) = filter(&original, true, &[100, 101, 102, 103]);
    let Filtered::Rewritten(empty) = f else {
        panic!("expected an empty header")
    };
    let h = BatchHeader::parse(&empty).expect("header");
    batch::verify_crc(&empty, &h).expect("crc");
    assert_eq!(
        (h.size, h.base_offset, h.last_offset_delta, h.records_count),
        (HEADER_BYTES, 100, 3, 0)
    );
    assert_eq!(producer_id(&empty), 7);
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec() {
    let values: Vec<String> = (0..50)
        .map(|i| format!("value-{i}-{}", "z".repeat(30)))
        .collect();
    let keys: Vec<String> = (0..50).map(|i| format!("key-{}", i % 10)).collect();
    let recs: Vec<KeyValue<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    for codec in [codec::GZIP, codec::SNAPPY, codec::LZ4, codec::ZSTD] {
        let original = build_batch(0, 1, &recs, codec, None);
        // Keep only the last record of each key (offsets 40..50).
        let drop: Vec<i64> = (0..40).collect();
        let (f, counts) = filter(&original, false, &drop);
        assert_eq!(counts.records, 50);
        let Filtered::Rewritten(out) = f else {
            panic!("codec {codec}: expected a rewrite")
        };
        assert_eq!(
            (i16_at(&out, ATTRIBUTES_AT) & CODEC_MASK) as u8,
            codec,
            "same codec"
        );
        let h = BatchHeader::parse(&out).expect("header");
        assert_eq!(
            (h.base_offset, h.last_offset_delta, h.records_count),
            (0, 49, 10)
        );
        let got = records_of(&out);
        assert_eq!(got.len(), 10);
        for (i, (offset, key, value)) in got.into_iter().enumerate() {
            assert_eq!(offset, 40 + i as i64);
            assert_eq!(key.as_deref(), Some(keys[40 + i].as_bytes()));
            assert_eq!(value.as_deref(), Some(values[40 + i].as_bytes()));
        }
    }
}

#[test]
fn corrupt_records_are_an_error_not_a_guess() {
    let mut b = build_batch(0, 1, &[kv("a", Some("1"))], codec::NONE, None);
    let last = b.len() - 1;
    b.truncate(last); // the record now runs past the batch
    seal(&mut b);
    let h = BatchHeader::parse(&b).expect("header");
    let mut counts = FilterCounts::default();
    let e = filter_batch(&b, &h, false, &mut counts, |_, _| Verdict::Keep).expect_err("corrupt");
    assert!(e.contains("record 0"), "{e}");
}

fn compacted(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 128,
        retention_ms: None,
        compact: true,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

struct Clock(Rc<Cell<i64>>);

impl Clock {
    fn new(ms: i64) -> Clock {
        Clock(Rc::new(Cell::new(ms)))
    }
    fn boxed(&self) -> Box<dyn Fn() -> i64> {
        let c = self.0.clone();
        Box::new(move || c.get())
    }
}

async fn append(log: &Log, ts: i64, recs: &[KeyValue<'_>]) -> i64 {
    let b = build_batch(0, ts, recs, codec::NONE, None);
    let info = log.append(BytesMut::from(&b[..]), 0).await.expect("append");
    info.base_offset.0
}

/// Every record in the log, in offset order, checking offsets increase.
async fn all_records(log: &Log) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    let mut next = log.offsets().log_start;
    loop {
        let r = log.read(next, 1 << 20, None).await.expect("read");
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().await.expect("bytes");
        let mut at = 0;
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).expect("header");
            for rec in records_of(&bytes[at..at + h.size]) {
                if let Some(last) = out.last() {
                    assert!(
                        rec.0 > last.0,
                        "offsets increase: {} after {}",
                        rec.0,
                        last.0
                    );
                }
                out.push(rec);
            }
            at += h.size;
        }
        next = r.next_offset;
    }
    out
}

/// Writes `rounds` updates of `keys` keys (value `k{key}-r{round}`), one
/// record per batch, with timestamp `ts`. Returns key -> latest offset.
async fn write_updates(log: &Log, keys: usize, rounds: usize, ts: i64) -> BTreeMap<String, i64> {
    let mut latest = BTreeMap::new();
    for round in 0..rounds {
        for key in 0..keys {
            let k = format!("key{key}");
            let v = format!("k{key}-r{round}-{}", "p".repeat(20));
            let offset = append(log, ts, &[kv(&k, Some(&v))]).await;
            latest.insert(k, offset);
        }
    }
    latest
}

fn key_str(r: &Rec) -> String {
    String::from_utf8(r.1.clone().unwrap_or_default()).expect("utf8 key")
}

#[test]
fn a_pass_keeps_the_latest_value_per_key_at_its_offset() {
    let dir = TempDir::new("compact-latest");
    let clock = Clock::new(1_000_000);
    block_on(async {
        let log = Log::open_with_clock(&dir.0, compacted(2048), clock.boxed())
            .await
            .expect("open");
        let latest = write_updates(&log, 5, 40, 1_000).await;
        let before = all_records(&log).await;
        assert_eq!(before.len(), 200);
        let segments_before = log.stats().segments;
        assert!(segments_before > 3, "segments rolled: {segments_before}");
        let active_base = log.offsets().written.0 - 1;
        let stats = log
            .compact()
            .await
            .expect("compact")
            .expect("a pass was due");
        assert!(stats.records_removed > 0 && stats.bytes_after < stats.bytes_before);
        let after = all_records(&log).await;
        // Each survivor has the offset and value it had before.
        for r in &after {
            assert!(before.contains(r), "survivor {r:?} unchanged");
        }
        // For each key, the latest record is there; in the cleaned range
        // only the latest one.
        let view = log.cleaner_view();
        for (key, &offset) in &latest {
            let of_key: Vec<&Rec> = after.iter().filter(|r| &key_str(r) == key).collect();
            assert_eq!(of_key.last().expect("key survives").0, offset, "{key}");
            let cleaned: Vec<_> = of_key.iter().filter(|r| r.0 < view.first_dirty).collect();
            assert!(
                cleaned.len() <= 1,
                "{key}: one value below the dirty offset"
            );
        }
        assert!(view.first_dirty <= active_base + 1);
        // A second pass groups the small cleaned segments.
        write_updates(&log, 5, 20, 1_000).await;
        log.compact().await.expect("compact").expect("due");
        assert!(
            log.stats().segments < segments_before,
            "small segments grouped"
        );
        let after = all_records(&log).await;
        let view = log.cleaner_view();
        // Appends go on; the checkpoint survives a clean reopen.
        let next = append(&log, 1_000, &[kv("key0", Some("after"))]).await;
        assert_eq!(next, log.offsets().written.0 - 1);
        log.close().await.expect("close");
        let log = Log::open_with_clock(&dir.0, compacted(2048), clock.boxed())
            .await
            .expect("reopen");
        assert_eq!(log.cleaner_view().first_dirty, view.first_dirty);
        let reopened = all_records(&log).await;
        assert_eq!(&reopened[..after.len()], &after[..]);
        assert!(log.verify().await.expect("verify").is_none());
    });
}

#[test]
fn tombstones_go_only_after_delete_retention_in_a_later_pass() {
    let dir = TempDir::new("compact-tombstone");
    let clock = Clock::new(10_000);
    block_on(async {
        let log = Log::open_with_clock(&dir.0, compacted(1024), clock.boxed())
            .await
            .expect("open");
        write_updates(&log, 3, 10, 10_000).await;
        append(&log, 10_000, &[kv("key1", None)]).await;
        write_updates(&log, 1, 20, 10_000).await; // roll past the tombstone
        log.compact().await.expect("compact").expect("due");
        let after = all_records(&log).await;
        let key1: Vec<&Rec> = after.iter().filter(|r| key_str(r) == "key1").collect();
        assert_eq!(key1.len(), 1, "only the tombstone is left of key1");
        assert_eq!(key1[0].2, None);
        // Not yet past delete.retention.ms (1 s): a second pass keeps it.
        clock.0.set(10_500);
        write_updates(&log, 1, 20, 10_500).await;
        log.compact().await.expect("compact").expect("due");
        assert!(all_records(&log).await.iter().any(|r| key_str(r) == "key1"));
        // Past the horizon, the next pass drops it.
        clock.0.set(11_001);
        write_updates(&log, 1, 20, 11_001).await;
        let stats = log.compact().await.expect("compact").expect("due");
        assert_eq!(stats.tombstones_removed, 1);
        let left = all_records(&log).await;
        assert!(!left.iter().any(|r| key_str(r) == "key1"), "key1 vanished");
        assert!(left.iter().any(|r| key_str(r) == "key2"), "key2 stays");
    });
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let dir = TempDir::new("compact-lag");
    let clock = Clock::new(100_000);
    block_on(async {
        let config = LogConfig {
            min_compaction_lag_ms: 60_000,
            ..compacted(1024)
        };
        let log = Log::open_with_clock(&dir.0, config, clock.boxed())
            .await
            .expect("open");
        write_updates(&log, 2, 30, 99_000).await;
        assert!(log.compact().await.expect("compact").is_none(), "too young");
        clock.0.set(160_000);
        assert!(
            log.compact().await.expect("compact").is_some(),
            "old enough"
        );
    });
}

#[test]
fn a_reader_holding_an_old_segment_keeps_reading_it() {
    let dir = TempDir::new("compact-reader");
    block_on(async {
        let log = Log::open(&dir.0, compacted(2048)).await.expect("open");
        write_updates(&log, 3, 40, 1).await;
        let r = log.read(Offset(0), 1 << 20, None).await.expect("read");
        let slice = r.slice.expect("data");
        let before = slice.read_to_vec().await.expect("bytes");
        log.compact().await.expect("compact").expect("due");
        assert!(!slice.file.path().exists() || log.read(Offset(0), 1 << 20, None).await.is_ok());
        assert_eq!(slice.read_to_vec().await.expect("still readable"), before);
    });
}

/// The states a crash can leave during a swap.
#[derive(Debug, Clone, Copy)]
enum CrashAt {
    /// The job wrote `.cleaned` files; nothing committed.
    Cleaned,
    /// `.log.cleaned` renamed to `.log.swap`: committed.
    Swap,
    /// Committed, and the first replaced segment deleted.
    SwapOldPartlyDeleted,
    /// Committed, old segments deleted, new indexes in place.
    SwapOldDeleted,
}

#[test]
fn a_crash_at_each_step_of_the_swap_loses_and_duplicates_nothing() {
    for at in [
        CrashAt::Cleaned,
        CrashAt::Swap,
        CrashAt::SwapOldPartlyDeleted,
        CrashAt::SwapOldDeleted,
    ] {
        let dir = TempDir::new(&format!("compact-crash-{at:?}"));
        block_on(async {
            let log = Log::open(&dir.0, compacted(2048)).await.expect("open");
            let latest = write_updates(&log, 4, 40, 1).await;
            log.wait_durable(log.offsets().written)
                .await
                .expect("durable");
            let before = all_records(&log).await;
            let job = log.start_clean().expect("plan").expect("due");
            let output = job.run().expect("run");
            assert!(!output.cleaned.is_empty());
            let d = &dir.0;
            let name = |base: i64, suffix: &str| d.join(file_name(base, suffix));
            for c in &output.cleaned {
                if matches!(at, CrashAt::Cleaned) {
                    continue;
                }
                let swap = d.join(format!("{}{SWAP_SUFFIX}", file_name(c.base, ".log")));
                std::fs::rename(d.join(cleaned_name(c.base, ".log")), &swap).expect("rename");
                let doomed: &[(i64, u64)] = match at {
                    CrashAt::SwapOldPartlyDeleted => &c.replaced[..1],
                    CrashAt::SwapOldDeleted => &c.replaced,
                    _ => &[],
                };
                for (base, _) in doomed {
                    for suffix in [".log", ".index", ".timeindex"] {
                        let _ = std::fs::remove_file(name(*base, suffix));
                    }
                }
                if matches!(at, CrashAt::SwapOldDeleted) {
                    for suffix in [".index", ".timeindex"] {
                        std::fs::rename(d.join(cleaned_name(c.base, suffix)), name(c.base, suffix))
                            .expect("rename index");
                    }
                }
            }
            drop(log); // the crash: no close, no clean-shutdown marker
            let log = Log::open(&dir.0, compacted(2048)).await.expect("reopen");
            let leftovers: Vec<String> = std::fs::read_dir(d)
                .expect("ls")
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(CLEANED_SUFFIX) || n.ends_with(SWAP_SUFFIX))
                .collect();
            assert!(leftovers.is_empty(), "{at:?}: leftovers {leftovers:?}");
            let after = all_records(&log).await;
            for r in &after {
                assert!(before.contains(r), "{at:?}: {r:?} existed before");
            }
            for (key, &offset) in &latest {
                let last = after.iter().rfind(|r| &key_str(r) == key);
                assert_eq!(last.map(|r| r.0), Some(offset), "{at:?}: {key} latest kept");
            }
            if matches!(at, CrashAt::Cleaned) {
                assert_eq!(after, before, "rolled back");
            } else {
                assert!(after.len() < before.len(), "{at:?}: completed");
            }
            assert!(log.verify().await.expect("verify").is_none());
            // The log still takes appends and compacts again.
            append(&log, 1, &[kv("key0", Some("later"))]).await;
            log.close().await.expect("close");
        });
    }
}

#[test]
fn appends_and_rolls_go_on_while_a_pass_runs() {
    let dir = TempDir::new("compact-concurrent");
    block_on(async {
        let log = Log::open(&dir.0, compacted(2048)).await.expect("open");
        write_updates(&log, 4, 30, 1).await;
        let job = log.start_clean().expect("plan").expect("due");
        assert!(
            log.start_clean().expect("plan").is_none(),
            "one pass at a time"
        );
        // The job runs on its own thread; the shard appends meanwhile,
        // rolling new segments the job does not know about.
        let runner = std::thread::spawn(move || job.run());
        let segments_before = log.stats().segments;
        let latest = write_updates(&log, 4, 30, 1).await;
        assert!(
            log.stats().segments > segments_before,
            "rolled during the pass"
        );
        let output = runner.join().expect("job thread");
        let stats = log
            .finish_clean(output)
            .await
            .expect("swap")
            .expect("swapped");
        assert!(stats.records_removed > 0);
        let after = all_records(&log).await;
        for (key, &offset) in &latest {
            let last = after.iter().rfind(|r| &key_str(r) == key).expect("key");
            assert_eq!(
                last.0, offset,
                "{key}: appends made during the pass are intact"
            );
        }
        assert!(log.verify().await.expect("verify").is_none());
    });
}

#[test]
fn a_pass_whose_segments_retention_deleted_is_discarded() {
    let dir = TempDir::new("compact-discard");
    block_on(async {
        let log = Log::open(&dir.0, compacted(2048)).await.expect("open");
        write_updates(&log, 4, 40, 1).await;
        let job = log.start_clean().expect("plan").expect("due");
        let output = job.run();
        // DeleteRecords removes the first segment while the job ran.
        let second = log.stats().segments;
        let start = log
            .read(Offset(0), 1, None)
            .await
            .expect("read")
            .next_offset;
        log.advance_log_start(Offset(start.0 + 30))
            .await
            .expect("delete records");
        assert!(log.stats().segments < second);
        let before = all_records(&log).await;
        assert!(log.finish_clean(output).await.expect("finish").is_none());
        assert_eq!(all_records(&log).await, before, "nothing swapped");
        let leftovers = std::fs::read_dir(&dir.0)
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(CLEANED_SUFFIX))
            .count();
        assert_eq!(leftovers, 0, "the pass's files are removed");
        // The next pass goes ahead.
        assert!(log.compact().await.expect("compact").is_some());
    });
}

#[test]
fn the_segment_with_the_last_batch_is_never_cleaned() {
    let dir = TempDir::new("compact-tail");
    let clock = Clock::new(1_000);
    block_on(async {
        let config = LogConfig {
            segment_ms: Some(100),
            ..compacted(1 << 20)
        };
        let log = Log::open_with_clock(&dir.0, config, clock.boxed())
            .await
            .expect("open");
        write_updates(&log, 2, 10, 1_000).await;
        let last = append(&log, 1_000, &[kv("key0", None)]).await;
        clock.0.set(2_000);
        assert!(
            log.roll_if_due().await.expect("roll"),
            "the active segment is now empty"
        );
        assert!(
            log.compact().await.expect("compact").is_none(),
            "nothing cleanable"
        );
        // Once a later batch exists, the old segment is cleaned; the gap it
        // leaves at its end is read past.
        let tick = append(&log, 2_000, &[kv("tick", Some("1"))]).await;
        log.compact().await.expect("compact").expect("due");
        let after = all_records(&log).await;
        assert_eq!(after.last().map(|r| r.0), Some(tick));
        assert!(
            after.iter().any(|r| r.0 == last),
            "the tombstone is kept for now"
        );
        assert_eq!(after.len(), 3, "key1's latest, key0's tombstone, the tick");
    });
}

#[test]
fn an_idempotent_producers_last_batch_stays_as_an_empty_header() {
    let dir = TempDir::new("compact-producer");
    block_on(async {
        let log = Log::open(&dir.0, compacted(1024)).await.expect("open");
        let mut producer_batches = Vec::new();
        for seq in 0..3 {
            let b = build_batch(0, 1, &[kv("p", Some("v"))], codec::NONE, Some((9, 0, seq)));
            let info = log.append(BytesMut::from(&b[..]), 0).await.expect("append");
            producer_batches.push(info.base_offset.0);
        }
        // A later writer supersedes every record the producer wrote.
        write_updates(&log, 1, 1, 1).await;
        append(&log, 1, &[kv("p", Some("newer"))]).await;
        write_updates(&log, 2, 20, 1).await;
        log.compact().await.expect("compact").expect("due");
        let mut headers = Vec::new();
        let mut next = Offset(0);
        loop {
            let r = log.read(next, 1 << 20, None).await.expect("read");
            let Some(slice) = r.slice else { break };
            let bytes = slice.read_to_vec().await.expect("bytes");
            let mut at = 0;
            while at < bytes.len() {
                let h = BatchHeader::parse(&bytes[at..]).expect("header");
                if producer_id(&bytes[at..]) == 9 {
                    headers.push(h);
                }
                at += h.size;
            }
            next = r.next_offset;
        }
        assert_eq!(
            headers.len(),
            1,
            "only the producer's last batch: {headers:?}"
        );
        let h = headers[0];
        assert_eq!(h.base_offset, producer_batches[2]);
        assert_eq!((h.records_count, h.size), (0, HEADER_BYTES));
        assert!(log.verify().await.expect("verify").is_none());
    });
}
