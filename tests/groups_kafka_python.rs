//! A consumer group of kafka-python clients (`KafkaConsumer.subscribe()`,
//! not `assign()`) against a real broker process, across a restart.
//!
//! The scenario is in tests/clients/kafka_python_group.py:
//!
//! 1. `first`: a 6-partition topic with 40 records per partition (sent
//!    with `KafkaProducer`); three members of one group (range assignor,
//!    manual commits), each polling in its own thread, until every
//!    partition has exactly one owner (two each); each owner commits
//!    `10 + p`; one member closes and its partitions move to the other two
//!    (exactly one owner each, three each), which commit `20 + p`;
//! 2. the broker restarts (SIGTERM, start on the same directory);
//! 3. `second`: the commits and their metadata are still there, and a new
//!    member of the group resumes exactly at them: its first record of each
//!    partition is the committed offset and it reads every record from
//!    there to the end.
//!
//! Skipped, saying so, when the project's `.venv` lacks kafka-python
//! (tests/run-all.sh installs it).

#[path = "clients/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::{run_with_timeout, temp_dir, Broker};

/// The project's Python, if it has kafka-python.
fn python_with_kafka_python() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = Command::new(&venv)
        .args(["-c", "import kafka"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(venv)
}

#[test]
fn kafka_python_group_rebalances_and_commits_survive_restart() {
    let Some(python) = python_with_kafka_python() else {
        eprintln!(
            "SKIPPED: .venv/bin/python with kafka-python not found \
             (tests/run-all.sh installs it)"
        );
        return;
    };
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/kafka_python_group.py");
    let scratch = temp_dir("groups-kafka-python");
    let mut broker = Broker::start("groups-kafka-python-broker", &[]);
    let run = |broker: &Broker, phase: &str| {
        let out = run_with_timeout(
            Command::new(&python)
                .arg(&script)
                .arg(broker.bootstrap())
                .arg(phase),
            Duration::from_secs(120),
            &scratch,
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.lines().last() == Some("OK"),
            "{phase}: {}\nstdout:\n{stdout}\nstderr:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            broker.log()
        );
        eprintln!("{phase}: {stdout}");
    };
    run(&broker, "first");
    broker.restart();
    run(&broker, "second");
    broker.stop();
}
