//! Tests of [`Log::truncate_to`]: cuts in the active segment, at segment
//! boundaries, across sealed segments, inside a batch, to zero and below
//! the log start; appends and reads after; reopen (clean and after a
//! crash); indexes; queued appends; compaction.

use std::path::PathBuf;

use bytes::BytesMut;

use super::super::tests::TempDir;
use super::super::*;
use crate::rt::{self, block_on};

/// A batch of `n` records tagged `tag` with timestamp `ts`.
fn batch(tag: u32, n: usize, ts: i64) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("{tag}-{i}-{}", "y".repeat(30)).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    BytesMut::from(&batch::build(0, ts, &refs)[..])
}

/// The same batch with its offsets assigned (for `append_replica`).
fn replica_batch(base: i64, tag: u32, n: usize, ts: i64) -> BytesMut {
    let mut b = batch(tag, n, ts);
    batch::assign(&mut b, base, 7);
    b
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Appends `count` batches of 1..=3 records (tag i, timestamp 1000 + i).
async fn fill(log: &Log, count: u32) -> Vec<AppendInfo> {
    let mut infos = Vec::new();
    for i in 0..count {
        let n = 1 + (i as usize % 3);
        infos.push(
            log.append(batch(i, n, 1000 + i64::from(i)), 3)
                .await
                .expect("append"),
        );
    }
    infos
}

/// Every batch from `from` on, as (base offset, last offset, first value).
async fn read_all(log: &Log, from: i64) -> Vec<(i64, i64, i64)> {
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
            out.push((h.base_offset, h.last_offset(), h.max_timestamp));
            at += h.size;
        }
        next = r.next_offset;
    }
    out
}

fn segment_files(dir: &PathBuf) -> Vec<(i64, u64)> {
    let mut out: Vec<(i64, u64)> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry"))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let base = segment::parse_base(&name, ".log")?;
            Some((base, e.metadata().expect("stat").len()))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The offsets all stand at `end` and every kept batch reads back whole,
/// found from each of its offsets through the indexes.
async fn check_log(log: &Log, infos: &[AppendInfo], end: i64) {
    let o = log.offsets();
    assert_eq!(
        (o.log_end, o.written, o.durable),
        (Offset(end), Offset(end), Offset(end)),
        "{o:?}"
    );
    let kept: Vec<&AppendInfo> = infos.iter().filter(|i| i.last_offset.0 < end).collect();
    let got = read_all(log, o.log_start.0).await;
    let want: Vec<(i64, i64)> = kept
        .iter()
        .filter(|i| i.last_offset >= o.log_start)
        .map(|i| (i.base_offset.0, i.last_offset.0))
        .collect();
    assert_eq!(
        got.iter().map(|&(b, l, _)| (b, l)).collect::<Vec<_>>(),
        want
    );
    for info in kept.iter().filter(|i| i.base_offset >= o.log_start) {
        for offset in info.base_offset.0..=info.last_offset.0 {
            let r = log.read(Offset(offset), 1, None).await.expect("read");
            let bytes = r.slice.expect("data").read_to_vec().await.expect("bytes");
            let h = batch::parse_exact(&bytes).expect("one batch");
            assert_eq!(h.base_offset, info.base_offset.0, "lookup of {offset}");
        }
    }
    // Nothing at or past the end.
    assert!(log
        .read(Offset(end), 1 << 20, None)
        .await
        .expect("read at end")
        .slice
        .is_none());
    assert!(matches!(
        log.read(Offset(end + 1), 1 << 20, None).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.verify().await.expect("verify").is_none());
}

/// Appends after a truncation (as leader and as follower) land at the new
/// end and read back; returns their infos.
async fn append_after(log: &Log, end: i64) -> Vec<AppendInfo> {
    let a = log.append(batch(900, 2, 5000), 9).await.expect("append");
    assert_eq!(a.base_offset, Offset(end));
    let b = log
        .append_replica(replica_batch(end + 2, 901, 3, 5001))
        .await
        .expect("append_replica");
    assert_eq!(b.base_offset, Offset(end + 2));
    log.wait_durable(Offset(end + 5)).await.expect("durable");
    vec![a, b]
}

#[test]
fn truncate_in_the_middle_of_the_active_segment() {
    let dir = TempDir::new("trunc-active");
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("open");
        let infos = fill(&log, 60).await;
        let active = infos.last().expect("some").segment_base;
        let cut = infos
            .iter()
            .filter(|i| i.segment_base == active && i.position > 0)
            .nth(1)
            .expect("the active segment holds three batches");
        let before = segment_files(&dir.0);
        let out = log.truncate_to(cut.base_offset).await.expect("truncate");
        assert_eq!(out.log_end, cut.base_offset);
        assert!(out.truncated);
        assert_eq!(out.segments_deleted, 0);
        let after = segment_files(&dir.0);
        assert_eq!(after.len(), before.len());
        assert_eq!(after.last(), Some(&(active.0, cut.position)));
        check_log(&log, &infos, cut.base_offset.0).await;
        let mut all: Vec<AppendInfo> = infos
            .iter()
            .copied()
            .filter(|i| i.base_offset < cut.base_offset)
            .collect();
        all.extend(append_after(&log, cut.base_offset.0).await);
        let new_end = cut.base_offset.0 + 5;
        check_log(&log, &all, new_end).await;
        log.close().await.expect("close");
        let log = Log::open(&dir.0, config()).await.expect("reopen");
        check_log(&log, &all, new_end).await;
        log.close().await.expect("close");
    });
}

#[test]
fn truncate_at_a_segment_boundary_and_across_sealed_segments() {
    let dir = TempDir::new("trunc-sealed");
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("open");
        let infos = fill(&log, 120).await;
        let bases: Vec<Offset> = {
            let mut b: Vec<Offset> = infos.iter().map(|i| i.segment_base).collect();
            b.dedup();
            b
        };
        assert!(bases.len() >= 6, "{bases:?}");
        let before = segment_files(&dir.0);
        // At a boundary: the segment starting there is emptied and stays
        // as the active one; every later one goes.
        let boundary = bases[bases.len() - 2];
        let out = log.truncate_to(boundary).await.expect("truncate");
        assert_eq!(out.log_end, boundary);
        assert_eq!(out.segments_deleted, 1);
        assert_eq!(segment_files(&dir.0).last(), Some(&(boundary.0, 0)));
        check_log(&log, &infos, boundary.0).await;
        // Across several sealed segments: into the middle of an old one.
        let target = infos
            .iter()
            .filter(|i| i.segment_base == bases[1] && i.position > 0)
            .nth(2)
            .expect("batch in the second segment");
        let out = log.truncate_to(target.base_offset).await.expect("truncate");
        assert_eq!(out.log_end, target.base_offset);
        assert_eq!(out.segments_deleted, bases.len() - 3);
        assert_eq!(
            segment_files(&dir.0),
            vec![before[0], (bases[1].0, target.position)]
        );
        check_log(&log, &infos, target.base_offset.0).await;
        // Appends continue in the cut segment and roll again.
        let mut all: Vec<AppendInfo> = infos
            .iter()
            .copied()
            .filter(|i| i.base_offset < target.base_offset)
            .collect();
        for i in 0..40 {
            all.push(
                log.append(batch(500 + i, 2, 3000), 4)
                    .await
                    .expect("append"),
            );
        }
        assert_eq!(all[all.len() - 40].segment_base, bases[1]);
        assert!(all.last().expect("some").segment_base > bases[1]);
        let end = all.last().expect("some").last_offset.0 + 1;
        log.wait_durable(Offset(end)).await.expect("durable");
        check_log(&log, &all, end).await;
        log.close().await.expect("close");
    });
}

#[test]
fn truncate_inside_a_batch_cuts_at_its_base() {
    let dir = TempDir::new("trunc-inside");
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("open");
        let infos = fill(&log, 12).await;
        let victim = infos
            .iter()
            .find(|i| i.last_offset.0 - i.base_offset.0 == 2 && i.base_offset.0 > 5)
            .expect("a batch of three");
        let out = log
            .truncate_to(Offset(victim.base_offset.0 + 1))
            .await
            .expect("truncate");
        assert_eq!(out.log_end, victim.base_offset);
        check_log(&log, &infos, victim.base_offset.0).await;
        append_after(&log, victim.base_offset.0).await;
        log.close().await.expect("close");
    });
}

#[test]
fn truncate_to_zero_and_below_the_log_start_restarts_the_log() {
    let dir = TempDir::new("trunc-zero");
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("open");
        let infos = fill(&log, 50).await;
        let segments = log.stats().segments;
        let out = log.truncate_to(Offset(0)).await.expect("truncate");
        assert_eq!(out.log_end, Offset(0));
        assert_eq!(out.segments_deleted, segments);
        assert_eq!(segment_files(&dir.0), vec![(0, 0)]);
        check_log(&log, &infos, 0).await;
        assert_eq!(log.offsets().log_start, Offset(0));
        append_after(&log, 0).await;
        // Below a moved log start: empty at the target, which becomes the
        // log start.
        fill(&log, 30).await;
        let start = log.offsets().written.0 - 10;
        log.advance_log_start(Offset(start)).await.expect("advance");
        let out = log.truncate_to(Offset(start - 3)).await.expect("truncate");
        assert_eq!(out.log_end, Offset(start - 3));
        let o = log.offsets();
        assert_eq!(
            (o.log_start, o.log_end),
            (Offset(start - 3), Offset(start - 3))
        );
        assert_eq!(segment_files(&dir.0), vec![(start - 3, 0)]);
        let a = log.append(batch(1, 1, 0), 1).await.expect("append");
        assert_eq!(a.base_offset, Offset(start - 3));
        drop(log); // crash
    });
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("reopen");
        let o = log.offsets();
        assert_eq!(o.log_start.0, o.log_end.0 - 1);
        assert_eq!(read_all(&log, o.log_start.0).await.len(), 1);
        log.close().await.expect("close");
    });
}

#[test]
fn truncate_past_the_end_is_a_no_op() {
    let dir = TempDir::new("trunc-noop");
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("open");
        let infos = fill(&log, 10).await;
        let end = log.offsets().log_end;
        for target in [end, Offset(end.0 + 100)] {
            let out = log.truncate_to(target).await.expect("truncate");
            assert_eq!(
                out,
                TruncateOutcome {
                    log_end: end,
                    truncated: false,
                    segments_deleted: 0,
                    bytes_removed: 0
                }
            );
        }
        assert!(matches!(
            log.truncate_to(Offset(-1)).await,
            Err(LogError::OffsetOutOfRange { offset: -1, .. })
        ));
        log.wait_durable(end).await.expect("durable");
        check_log(&log, &infos, end.0).await;
        log.close().await.expect("close");
    });
}

#[test]
fn reopen_after_truncation_finds_the_same_end_clean_or_crashed() {
    for crash in [false, true] {
        let dir = TempDir::new(if crash { "trunc-crash" } else { "trunc-clean" });
        let (infos, end) = block_on(async {
            let log = Log::open(&dir.0, config()).await.expect("open");
            let infos = fill(&log, 90).await;
            let target = infos[40].base_offset;
            log.truncate_to(target).await.expect("truncate");
            if crash {
                drop(log);
            } else {
                log.close().await.expect("close");
            }
            (infos, target.0)
        });
        block_on(async {
            let log = Log::open(&dir.0, config()).await.expect("reopen");
            check_log(&log, &infos, end).await;
            // The time index was cut too: the newest kept timestamp is
            // the largest, and later ones are not found.
            let max = log.max_timestamp().await.expect("max ts").expect("some");
            assert_eq!(max.timestamp, 1000 + 39);
            assert_eq!(max.offset, infos[39].last_offset);
            let found = log
                .offset_for_timestamp(1000 + 20)
                .await
                .expect("by time")
                .expect("found");
            assert_eq!(found.offset, infos[20].base_offset);
            assert_eq!(
                log.offset_for_timestamp(1000 + 40).await.expect("by time"),
                None
            );
            let more = append_after(&log, end).await;
            let mut all: Vec<AppendInfo> = infos[..40].to_vec();
            all.extend(more);
            check_log(&log, &all, end + 5).await;
            log.close().await.expect("close");
        });
    }
}

#[test]
fn index_and_timestamp_lookups_after_truncation() {
    let dir = TempDir::new("trunc-index");
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("open");
        let infos = fill(&log, 70).await;
        let target = infos[33].base_offset;
        log.truncate_to(target).await.expect("truncate");
        let max = log.max_timestamp().await.expect("max ts").expect("some");
        assert_eq!(
            (max.timestamp, max.offset),
            (1000 + 32, infos[32].last_offset)
        );
        assert_eq!(
            log.offset_for_timestamp(1000 + 33).await.expect("by time"),
            None
        );
        // Appended later with a smaller timestamp than removed ones.
        let a = log.append(batch(7, 1, 1010), 3).await.expect("append");
        let found = log
            .offset_for_timestamp(1000 + 31)
            .await
            .expect("by time")
            .expect("found");
        assert_eq!(found.offset, infos[31].base_offset);
        let max = log.max_timestamp().await.expect("max ts").expect("some");
        assert_eq!(max.timestamp, 1000 + 32);
        let r = log.read(a.base_offset, 1, None).await.expect("read");
        let bytes = r.slice.expect("data").read_to_vec().await.expect("bytes");
        assert_eq!(
            batch::parse_exact(&bytes).expect("batch").base_offset,
            target.0
        );
        log.close().await.expect("close");
    });
}

#[test]
fn truncate_waits_for_queued_appends_and_refuses_new_ones() {
    let dir = TempDir::new("trunc-queued");
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("open");
        let infos = fill(&log, 10).await;
        let end = log.offsets().log_end.0;
        // Queued, not yet written: the truncation writes them first, then
        // cuts in the middle of them.
        let queued: Vec<_> = (0..30)
            .map(|i| log.append(batch(100 + i, 1, 0), 3))
            .collect();
        assert_eq!(log.offsets().log_end.0, end + 30);
        let target = Offset(end + 12);
        let truncation = {
            let log = log.clone();
            rt::spawn(async move { log.truncate_to(target).await })
        };
        let mut refused = false;
        while !truncation.is_finished() {
            if log.inner.state.borrow().truncating {
                // No await between the check and the append.
                let r = log.append(batch(999, 1, 0), 3).await;
                assert!(matches!(r, Err(LogError::Truncating { .. })), "{r:?}");
                assert!(matches!(
                    log.truncate_to(Offset(0)).await,
                    Err(LogError::Truncating { .. })
                ));
                refused = true;
                break;
            }
            rt::yield_now().await;
        }
        assert!(refused, "the truncation ran without yielding");
        let out = truncation.await.expect("truncate");
        assert_eq!(out.log_end, target);
        for (i, q) in queued.into_iter().enumerate() {
            let info = q.await.expect("queued append was written");
            assert_eq!(info.base_offset.0, end + i as i64);
        }
        let mut all = infos;
        for i in 0..12 {
            all.push(AppendInfo {
                base_offset: Offset(end + i),
                last_offset: Offset(end + i),
                segment_base: Offset(0),
                position: 0,
            });
        }
        check_log(&log, &all, target.0).await;
        let a = log.append(batch(5, 1, 0), 3).await.expect("append after");
        assert_eq!(a.base_offset, target);
        log.close().await.expect("close");
    });
}

/// Appends one keyed record per batch: `rounds` rounds over `keys` keys,
/// values of one length whatever `fill` is. Returns each batch's info.
async fn keyed_updates(log: &Log, keys: usize, rounds: usize, fill: char) -> Vec<AppendInfo> {
    let mut infos = Vec::new();
    for round in 0..rounds {
        for key in 0..keys {
            let k = format!("key{key}");
            let v = format!("k{key}-r{round:03}-{}", fill.to_string().repeat(20));
            let b =
                compact::build_batch(0, 1, &[(Some(k.as_bytes()), Some(v.as_bytes()))], 0, None);
            infos.push(log.append(BytesMut::from(&b[..]), 1).await.expect("append"));
        }
    }
    infos
}

/// Each record's value by offset (one record per batch here, except where
/// compaction merged them).
async fn values(log: &Log) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut next = log.offsets().log_start;
    loop {
        let r = log.read(next, 1 << 20, None).await.expect("read");
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec().await.expect("bytes");
        let mut at = 0;
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).expect("header");
            // The record is the batch's tail: a headers count (0) after
            // the value, so these bytes end with the value's last ones.
            let body = &bytes[at..at + h.size];
            let value = String::from_utf8_lossy(&body[body.len() - 30..body.len() - 1]);
            out.push((h.base_offset, value.into_owned()));
            at += h.size;
        }
        next = r.next_offset;
    }
    out
}

#[test]
fn a_compaction_pass_planned_before_a_truncation_is_not_swapped_in() {
    let dir = TempDir::new("trunc-compact");
    let config = LogConfig {
        compact: true,
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    };
    block_on(async {
        let log = Log::open(&dir.0, config.clone()).await.expect("open");
        let old = keyed_updates(&log, 4, 40, 'p').await;
        let job = log.start_clean().expect("plan").expect("due");
        let output = job.run();
        // The follower's new leader has other records from offset 30 on:
        // truncate and write them. Same keys and sizes, so the segments
        // come back at the same bases with the same sizes, which is all
        // the swap's own check compares.
        let cut = Offset(30);
        log.truncate_to(cut).await.expect("truncate");
        let mut new = old[..30].to_vec();
        for info in keyed_updates(&log, 4, 40, 'q').await.into_iter().take(130) {
            new.push(info);
        }
        let same_layout = old
            .iter()
            .zip(&new)
            .all(|(a, b)| (a.segment_base, a.position) == (b.segment_base, b.position));
        assert!(same_layout, "the test needs the old segment layout back");
        let before = values(&log).await;
        assert!(
            before[30..].iter().all(|(_, v)| v.ends_with('q')),
            "{before:?}"
        );
        assert!(
            log.finish_clean(output).await.expect("finish").is_none(),
            "the pass planned before the truncation is discarded"
        );
        assert_eq!(values(&log).await, before, "no removed record comes back");
        assert!(std::fs::read_dir(&dir.0).expect("ls").flatten().all(|e| !e
            .file_name()
            .to_string_lossy()
            .ends_with(compact::CLEANED_SUFFIX)));
        // The next pass goes ahead, and keeps only new values above the cut.
        assert!(log.compact().await.expect("compact").is_some());
        let after = values(&log).await;
        assert!(after
            .iter()
            .filter(|(o, _)| *o >= cut.0)
            .all(|(_, v)| v.ends_with('q')));
        assert!(log.verify().await.expect("verify").is_none());
        log.close().await.expect("close");
    });
}

#[test]
fn durability_waits_past_the_cut_fail_and_those_below_it_succeed() {
    let dir = TempDir::new("trunc-waiters");
    block_on(async {
        let log = Log::open(&dir.0, config()).await.expect("open");
        fill(&log, 10).await;
        let end = log.offsets().log_end.0;
        let queued: Vec<_> = (0..20)
            .map(|i| log.append(batch(200 + i, 1, 0), 3))
            .collect();
        let target = Offset(end + 8);
        // The truncation's first step (refusing appends, holding the
        // flusher off) runs before any queued write completes, so neither
        // wait below is answered by a group commit first.
        let truncation = {
            let log = log.clone();
            rt::spawn(async move { log.truncate_to(target).await })
        };
        let wait = |offset: i64| {
            let log = log.clone();
            rt::spawn(async move { log.wait_durable(Offset(offset)).await })
        };
        let past = wait(end + 20);
        let below = wait(end + 5);
        assert_eq!(truncation.await.expect("truncate").log_end, target);
        match past.await {
            Err(LogError::Truncated { offset, end: cut }) => {
                assert_eq!((offset, cut), (end + 20, target.0));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        below.await.expect("durable below the cut");
        for q in queued {
            q.await.expect("written before the cut");
        }
        assert_eq!(log.offsets().durable, target);
        log.close().await.expect("close");
    });
}
