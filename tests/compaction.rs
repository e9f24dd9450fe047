//! Log compaction end to end: a real broker process, a real third-party
//! client (confluent-kafka-python, librdkafka) producing many updates of a
//! few keys and tombstones to a `cleanup.policy=compact` topic with small,
//! quickly rolled segments, while another consumer reads from the
//! beginning again and again; tests/clients/compaction.py checks each read
//! (survivors keep their offsets and contents, per key no older value after
//! a newer one) and waits for the compacted state (latest value per key,
//! tombstoned keys gone after `delete.retention.ms`). The broker's cleaner
//! is made prompt by `log.cleaner.backoff.ms`, not by sleeps in the test.
//! Then the broker restarts, the state is read again, and the partition's
//! log passes `ringtail log verify`.

#[path = "clients/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::{run_with_timeout, temp_dir, Broker};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn run_client(broker: &Broker, args: &[&str], scratch: &std::path::Path) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/compaction.py");
    let mut command = Command::new(python());
    command.arg(&script).arg(broker.bootstrap()).args(args);
    let out = run_with_timeout(&mut command, CLIENT_TIMEOUT, scratch);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "compaction.py {args:?} failed ({}); confluent-kafka comes from tests/run-all.sh's .venv\n\
         ---- stdout ----\n{stdout}\n---- stderr ----\n{stderr}\n{}",
        out.status,
        broker.log()
    );
    stdout
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_per_key_for_a_real_client() {
    let scratch = temp_dir("compaction-scratch");
    let mut broker = Broker::start(
        "compaction",
        &[
            "log.cleaner.backoff.ms=100",
            "log.retention.check.interval.ms=100",
        ],
    );
    let topic = "compacted";
    let state = scratch.join("state.json");
    let state = state.to_str().expect("utf-8 path");
    let out = run_client(&broker, &[topic, "produce", state], &scratch);
    println!("{out}");
    let log = broker.log();
    let passes: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with(&format!("{topic}-0: compacted")))
        .collect();
    assert!(!passes.is_empty(), "the broker logs each pass\n{log}");
    println!("{} cleaner passes:\n{}", passes.len(), passes.join("\n"));
    broker.restart();
    let out = run_client(&broker, &[topic, "verify", state], &scratch);
    println!("{out}");
    broker.stop();
    broker.verify_partition(topic, 0);
    let _ = std::fs::remove_dir_all(&scratch);
}
