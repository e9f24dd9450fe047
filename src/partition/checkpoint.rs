//! A partition's replication checkpoints, in Kafka's text format: a
//! version line (`0`), an entry count, then one entry per line.
//!
//! - `leader-epoch-checkpoint` (Kafka's `LeaderEpochCheckpointFile`, same
//!   name and format): one `epoch start_offset` line per
//!   [`EpochEntry`] of the leader-epoch cache.
//! - `high-watermark-checkpoint`: the partition's high watermark, as one
//!   `topic partition offset` line. **Deviation from Kafka**, which keeps a
//!   single `replication-offset-checkpoint` per log directory holding every
//!   partition's line: Ringtail's partitions belong to different shard
//!   threads, and one shared file would need a writer across them. So each
//!   partition keeps its own file, in its own directory, in the same format
//!   with one entry (a Kafka tool reading it sees a valid
//!   `replication-offset-checkpoint` for that one partition).
//!
//! Writes are atomic and durable before they return: the text goes to
//! `NAME.tmp`, which is fdatasynced, renamed over `NAME`, and the
//! directory fsynced. A crash leaves the old file or the new one; a
//! leftover `NAME.tmp` is never read (the next write replaces it). Reads
//! of a missing file give "nothing recorded"; anything malformed is an
//! error naming the file, the line and what is wrong, never a default.
//!
//! These are control-path writes (on leadership changes and at the
//! `replica.high.watermark.checkpoint.interval.ms` period), done with
//! plain blocking syscalls like the log's own checkpoints.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use ringtail_io::rt;
use thiserror::Error;

use crate::replication::epochs::EpochEntry;
use crate::replication::{LeaderEpoch, Offset};

/// The leader-epoch cache's file, in the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// The high watermark's file, in the partition directory.
pub const HIGH_WATERMARK_CHECKPOINT: &str = "high-watermark-checkpoint";

const VERSION: &str = "0";

/// A checkpoint that could not be read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// `line` counts from 1.
    #[error("{} line {line}: {problem}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: Problem,
    },
}

/// What is wrong with a malformed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("version {found:?} is not the supported version 0")]
    BadVersion { found: String },
    #[error("entry count {found:?} is not a non-negative number")]
    BadCount { found: String },
    #[error("the count on line 2 says {expected} entries but the file holds {found}")]
    CountMismatch { expected: usize, found: usize },
    #[error("{found:?} does not have the form `{form}`")]
    BadEntry { found: String, form: &'static str },
    #[error("{field} {found:?} is not a non-negative number")]
    BadNumber { field: &'static str, found: String },
    #[error("a partition's high-watermark file holds one entry, not {0}")]
    NotOneEntry(usize),
}

/// Writes the leader-epoch cache's entries to `dir/leader-epoch-checkpoint`
/// (atomically and durably, see the module docs).
pub fn write_epochs(dir: &Path, entries: &[EpochEntry]) -> io::Result<()> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        let _ = writeln!(text, "{} {}", e.epoch.0, e.start_offset.0);
    }
    write_atomic(dir, LEADER_EPOCH_CHECKPOINT, &text)
}

/// Reads `dir/leader-epoch-checkpoint`; a missing file is no entries.
/// The entries' order is checked by
/// [`LeaderEpochCache::from_entries`](crate::replication::epochs::LeaderEpochCache::from_entries).
pub fn read_epochs(dir: &Path) -> Result<Vec<EpochEntry>, CheckpointError> {
    let path = dir.join(LEADER_EPOCH_CHECKPOINT);
    let Some(lines) = read_lines(&path)? else {
        return Ok(Vec::new());
    };
    lines
        .iter()
        .map(|(line, text)| {
            let malformed = |problem| CheckpointError::Malformed {
                path: path.clone(),
                line: *line,
                problem,
            };
            let [epoch, offset] = fields(text).map_err(|found| {
                malformed(Problem::BadEntry {
                    found,
                    form: "epoch start_offset",
                })
            })?;
            let epoch = number::<i32>(epoch, "epoch").map_err(malformed)?;
            let start_offset = number::<i64>(offset, "start offset").map_err(malformed)?;
            Ok(EpochEntry {
                epoch: LeaderEpoch(epoch),
                start_offset: Offset(start_offset),
            })
        })
        .collect()
}

/// The checkpoint's text: the one line `topic partition offset`.
fn high_watermark_text(topic: &str, partition: i32, offset: i64) -> io::Result<String> {
    if topic.is_empty() || topic.chars().any(char::is_whitespace) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("topic name {topic:?} cannot be written in a checkpoint line"),
        ));
    }
    if partition < 0 || offset < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("partition {partition} and offset {offset} must be non-negative"),
        ));
    }
    let text = format!("{VERSION}\n1\n{topic} {partition} {offset}\n");
    Ok(text)
}

/// Writes `dir/high-watermark-checkpoint` with the one line
/// `topic partition offset` (atomically and durably).
pub fn write_high_watermark(
    dir: &Path,
    topic: &str,
    partition: i32,
    offset: i64,
) -> io::Result<()> {
    let text = high_watermark_text(topic, partition, offset)?;
    write_atomic(dir, HIGH_WATERMARK_CHECKPOINT, &text)
}

/// [`write_high_watermark`] with the writes and syncs through io_uring, for
/// the periodic checkpoint on a shard thread: under a busy disk each
/// fsync can take tens of milliseconds, and a shard must not stop serving
/// its connections and followers meanwhile.
pub async fn write_high_watermark_async(
    dir: PathBuf,
    topic: &str,
    partition: i32,
    offset: i64,
) -> io::Result<()> {
    let text = high_watermark_text(topic, partition, offset)?;
    let path = dir.join(HIGH_WATERMARK_CHECKPOINT);
    // A temporary file of its own: a forced write at close may run while
    // this one waits for its fsync; the later rename then puts an older
    // (lower, so still safe) HW in place, never a mix of the two.
    let tmp = dir.join(format!("{HIGH_WATERMARK_CHECKPOINT}.bg.tmp"));
    let result: io::Result<()> = async {
        let file: rt::fs::File = fs::File::create(&tmp)?.into();
        file.write_all_at(text.into_bytes(), 0).await.0?;
        file.datasync().await?;
        drop(file);
        fs::rename(&tmp, &path)?;
        rt::fs::open_dir(&dir)?.fsync().await
    }
    .await;
    result.map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// Reads `dir/high-watermark-checkpoint`: the offset, or `None` when the
/// file is missing or holds no entry.
pub fn read_high_watermark(dir: &Path) -> Result<Option<i64>, CheckpointError> {
    let path = dir.join(HIGH_WATERMARK_CHECKPOINT);
    let Some(lines) = read_lines(&path)? else {
        return Ok(None);
    };
    let Some((line, text)) = lines.first() else {
        return Ok(None);
    };
    if lines.len() > 1 {
        return Err(CheckpointError::Malformed {
            path,
            line: 2,
            problem: Problem::NotOneEntry(lines.len()),
        });
    }
    let malformed = |problem| CheckpointError::Malformed {
        path: path.clone(),
        line: *line,
        problem,
    };
    let [_topic, partition, offset] = fields(text).map_err(|found| {
        malformed(Problem::BadEntry {
            found,
            form: "topic partition offset",
        })
    })?;
    number::<i32>(partition, "partition").map_err(malformed)?;
    Ok(Some(number::<i64>(offset, "offset").map_err(malformed)?))
}

/// Splits an entry line into exactly `N` space-separated fields.
fn fields<const N: usize>(text: &str) -> Result<[&str; N], String> {
    let parts: Vec<&str> = text.split(' ').collect();
    <[&str; N]>::try_from(parts)
        .ok()
        .filter(|p| p.iter().all(|f| !f.is_empty()))
        .ok_or_else(|| text.to_string())
}

fn number<T: std::str::FromStr + Default + PartialOrd>(
    text: &str,
    field: &'static str,
) -> Result<T, Problem> {
    match text.parse::<T>() {
        Ok(v) if v >= T::default() => Ok(v),
        _ => Err(Problem::BadNumber {
            field,
            found: text.to_string(),
        }),
    }
}

/// Reads a checkpoint and checks its version and count lines. Returns the
/// entry lines with their 1-based numbers, or `None` if the file is
/// missing.
fn read_lines(path: &Path) -> Result<Option<Vec<(usize, String)>>, CheckpointError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let malformed = |line, problem| CheckpointError::Malformed {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let mut lines = text.lines();
    let version = lines.next().unwrap_or("");
    if version != VERSION {
        return Err(malformed(
            1,
            Problem::BadVersion {
                found: version.to_string(),
            },
        ));
    }
    let count = lines.next().unwrap_or("");
    let expected: usize = count.parse().map_err(|_| {
        malformed(
            2,
            Problem::BadCount {
                found: count.to_string(),
            },
        )
    })?;
    let entries: Vec<(usize, String)> = lines
        .enumerate()
        .map(|(i, l)| (i + 3, l.to_string()))
        .collect();
    if entries.len() != expected {
        return Err(malformed(
            2,
            Problem::CountMismatch {
                expected,
                found: entries.len(),
            },
        ));
    }
    Ok(Some(entries))
}

/// Writes `dir/name` through `name.tmp`: write, fdatasync, rename, fsync
/// the directory. Errors name the file.
fn write_atomic(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let result: io::Result<()> = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("ringtail-checkpoint-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("mkdir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn entry(epoch: i32, start: i64) -> EpochEntry {
        EpochEntry {
            epoch: LeaderEpoch(epoch),
            start_offset: Offset(start),
        }
    }

    /// The problem and line of a malformed file, panicking otherwise; the
    /// message names the file.
    fn problem(
        result: Result<impl std::fmt::Debug, CheckpointError>,
        name: &str,
    ) -> (usize, Problem) {
        match result {
            Err(e @ CheckpointError::Malformed { .. }) => {
                assert!(e.to_string().contains(name), "{e}");
                let CheckpointError::Malformed { line, problem, .. } = e else {
                    unreachable!()
                };
                (line, problem)
            }
            other => panic!("expected a malformed checkpoint, got {other:?}"),
        }
    }

    #[test]
    fn epochs_round_trip_in_kafkas_format() {
        let dir = TempDir::new("epochs");
        assert_eq!(read_epochs(&dir.0).expect("missing"), Vec::new());
        let entries = vec![entry(0, 0), entry(3, 120), entry(7, 4_000_000_000)];
        write_epochs(&dir.0, &entries).expect("write");
        assert_eq!(
            fs::read_to_string(dir.0.join(LEADER_EPOCH_CHECKPOINT)).expect("text"),
            "0\n3\n0 0\n3 120\n7 4000000000\n"
        );
        assert_eq!(read_epochs(&dir.0).expect("read"), entries);
        // Overwritten whole, also with fewer entries and with none.
        write_epochs(&dir.0, &entries[..1]).expect("write");
        assert_eq!(read_epochs(&dir.0).expect("read"), entries[..1]);
        write_epochs(&dir.0, &[]).expect("write");
        assert_eq!(read_epochs(&dir.0).expect("read"), Vec::new());
        assert!(!dir
            .0
            .join(format!("{LEADER_EPOCH_CHECKPOINT}.tmp"))
            .exists());
    }

    #[test]
    fn high_watermark_round_trips_as_one_kafka_line() {
        let dir = TempDir::new("hw");
        assert_eq!(read_high_watermark(&dir.0).expect("missing"), None);
        write_high_watermark(&dir.0, "orders.v2", 11, 4242).expect("write");
        assert_eq!(
            fs::read_to_string(dir.0.join(HIGH_WATERMARK_CHECKPOINT)).expect("text"),
            "0\n1\norders.v2 11 4242\n"
        );
        assert_eq!(read_high_watermark(&dir.0).expect("read"), Some(4242));
        write_high_watermark(&dir.0, "orders.v2", 11, 0).expect("write");
        assert_eq!(read_high_watermark(&dir.0).expect("read"), Some(0));
        for (topic, partition, offset) in [("a b", 0, 1), ("", 0, 1), ("t", -1, 1), ("t", 0, -5)] {
            let e = write_high_watermark(&dir.0, topic, partition, offset).expect_err("refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(read_high_watermark(&dir.0).expect("unchanged"), Some(0));
        fs::write(dir.0.join(HIGH_WATERMARK_CHECKPOINT), "0\n0\n").expect("write");
        assert_eq!(read_high_watermark(&dir.0).expect("no entry"), None);
    }

    #[test]
    fn malformed_epoch_checkpoints_name_the_file_line_and_problem() {
        let dir = TempDir::new("epochs-bad");
        let path = dir.0.join(LEADER_EPOCH_CHECKPOINT);
        let cases: Vec<(&str, usize, Problem)> = vec![
            (
                "",
                1,
                Problem::BadVersion {
                    found: String::new(),
                },
            ),
            ("1\n0\n", 1, Problem::BadVersion { found: "1".into() }),
            (
                "0\n",
                2,
                Problem::BadCount {
                    found: String::new(),
                },
            ),
            (
                "0\ntwo\n",
                2,
                Problem::BadCount {
                    found: "two".into(),
                },
            ),
            ("0\n-1\n", 2, Problem::BadCount { found: "-1".into() }),
            (
                "0\n2\n1 0\n",
                2,
                Problem::CountMismatch {
                    expected: 2,
                    found: 1,
                },
            ),
            (
                "0\n1\n1 0\n2 5\n",
                2,
                Problem::CountMismatch {
                    expected: 1,
                    found: 2,
                },
            ),
            (
                "0\n2\n1 0\n2 x5\n",
                4,
                Problem::BadNumber {
                    field: "start offset",
                    found: "x5".into(),
                },
            ),
            (
                "0\n1\nfive 0\n",
                3,
                Problem::BadNumber {
                    field: "epoch",
                    found: "five".into(),
                },
            ),
            (
                "0\n1\n-2 0\n",
                3,
                Problem::BadNumber {
                    field: "epoch",
                    found: "-2".into(),
                },
            ),
            (
                "0\n1\n3\n",
                3,
                Problem::BadEntry {
                    found: "3".into(),
                    form: "epoch start_offset",
                },
            ),
            (
                "0\n1\n3  7\n",
                3,
                Problem::BadEntry {
                    found: "3  7".into(),
                    form: "epoch start_offset",
                },
            ),
            (
                "0\n1\n3 7 9\n",
                3,
                Problem::BadEntry {
                    found: "3 7 9".into(),
                    form: "epoch start_offset",
                },
            ),
        ];
        for (text, line, want) in cases {
            fs::write(&path, text).expect("write");
            assert_eq!(
                problem(read_epochs(&dir.0), LEADER_EPOCH_CHECKPOINT),
                (line, want),
                "{text:?}"
            );
        }
        // The file is left as it was: a bad checkpoint is reported, not
        // repaired or replaced by a default.
        assert_eq!(fs::read_to_string(&path).expect("text"), "0\n1\n3 7 9\n");
    }

    #[test]
    fn malformed_high_watermark_checkpoints_name_the_file_line_and_problem() {
        let dir = TempDir::new("hw-bad");
        let path = dir.0.join(HIGH_WATERMARK_CHECKPOINT);
        let cases: Vec<(&str, usize, Problem)> = vec![
            (
                "9\n1\nt 0 5\n",
                1,
                Problem::BadVersion { found: "9".into() },
            ),
            (
                "0\n1\n",
                2,
                Problem::CountMismatch {
                    expected: 1,
                    found: 0,
                },
            ),
            ("0\n2\nt 0 5\nt 1 6\n", 2, Problem::NotOneEntry(2)),
            (
                "0\n1\nt 0 five\n",
                3,
                Problem::BadNumber {
                    field: "offset",
                    found: "five".into(),
                },
            ),
            (
                "0\n1\nt p 5\n",
                3,
                Problem::BadNumber {
                    field: "partition",
                    found: "p".into(),
                },
            ),
            (
                "0\n1\nt 5\n",
                3,
                Problem::BadEntry {
                    found: "t 5".into(),
                    form: "topic partition offset",
                },
            ),
        ];
        for (text, line, want) in cases {
            fs::write(&path, text).expect("write");
            assert_eq!(
                problem(read_high_watermark(&dir.0), HIGH_WATERMARK_CHECKPOINT),
                (line, want),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_leftover_tmp_file_is_ignored_and_replaced() {
        let dir = TempDir::new("tmp");
        // A crash between writing the temp file and the rename.
        let epochs_tmp = dir.0.join(format!("{LEADER_EPOCH_CHECKPOINT}.tmp"));
        let hw_tmp = dir.0.join(format!("{HIGH_WATERMARK_CHECKPOINT}.tmp"));
        fs::write(&epochs_tmp, "0\n1\n9 9").expect("write");
        fs::write(&hw_tmp, "garbage").expect("write");
        assert_eq!(read_epochs(&dir.0).expect("read"), Vec::new());
        assert_eq!(read_high_watermark(&dir.0).expect("read"), None);
        write_epochs(&dir.0, &[entry(1, 10)]).expect("write");
        write_high_watermark(&dir.0, "t", 0, 10).expect("write");
        fs::write(&epochs_tmp, "0\n1\n9 9").expect("write");
        fs::write(&hw_tmp, "0\n1\nt 0 99\n").expect("write");
        assert_eq!(read_epochs(&dir.0).expect("read"), vec![entry(1, 10)]);
        assert_eq!(read_high_watermark(&dir.0).expect("read"), Some(10));
        write_epochs(&dir.0, &[entry(1, 10), entry(2, 20)]).expect("write over the tmp");
        assert_eq!(
            read_epochs(&dir.0).expect("read"),
            vec![entry(1, 10), entry(2, 20)]
        );
        assert!(!epochs_tmp.exists());
    }

    #[test]
    fn an_unreadable_checkpoint_is_an_io_error_naming_it() {
        let dir = TempDir::new("io");
        // A directory where the file should be.
        fs::create_dir(dir.0.join(LEADER_EPOCH_CHECKPOINT)).expect("mkdir");
        match read_epochs(&dir.0) {
            Err(e @ CheckpointError::Io { .. }) => {
                assert!(e.to_string().contains(LEADER_EPOCH_CHECKPOINT), "{e}")
            }
            other => panic!("expected an i/o error, got {other:?}"),
        }
        let e = write_epochs(&dir.0, &[]).expect_err("cannot rename over a directory");
        assert!(e.to_string().contains(LEADER_EPOCH_CHECKPOINT), "{e}");
    }
}
