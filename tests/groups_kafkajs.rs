//! Consumer groups with kafkajs against a real broker process.
//!
//! tests/clients/kafkajs_group.js runs the scenario of
//! tests/consumer_groups.rs with kafkajs' own group consumer
//! (subscribe + run, autoCommit off, explicit commitOffsets):
//!
//! 1. `first`: a 6-partition topic gets 30 single-record batches per
//!    partition; three consumers join one group and own two partitions
//!    each (their GROUP_JOIN assignments and the broker's DescribeGroups
//!    agree); each commits `5 + p`; one disconnects and its partitions
//!    move to the other two, which start them exactly at `5 + p`; they
//!    commit `10 + p` with metadata;
//! 2. the broker restarts (SIGTERM, start on the same directory);
//! 3. `second`: the commits are still there, metadata included; a new
//!    consumer in the group starts every partition exactly at `10 + p`
//!    and reads every record to the end, in order.
//!
//! kafkajs is installed into tests/clients/node_modules by
//! tests/run-all.sh; without node or kafkajs this test says so and is
//! skipped, like the confluent-kafka group test.

#[path = "clients/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::{run_with_timeout, temp_dir, Broker};

/// One phase of the script; the script's own waits are 40 s each.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Why node with kafkajs cannot run here, if it cannot.
fn kafkajs_missing() -> Option<String> {
    match Command::new("node")
        .args(["-e", "require('kafkajs')"])
        .current_dir(clients_dir())
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "kafkajs not found in tests/clients/node_modules ({})",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
        )),
        Err(e) => Some(format!("node cannot run: {e}")),
    }
}

/// Runs one phase; returns its stdout, or fails the test with everything
/// the script and the broker printed.
fn run_phase(broker: &Broker, args: &[&str], scratch: &std::path::Path) -> String {
    let out = run_with_timeout(
        Command::new("node")
            .arg(clients_dir().join("kafkajs_group.js"))
            .arg(broker.bootstrap())
            .args(args)
            .current_dir(clients_dir())
            .env("KAFKAJS_NO_PARTITIONER_WARNING", "1"),
        PHASE_TIMEOUT,
        scratch,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().last() == Some("OK"),
        "kafkajs_group.js {args:?}: {}\n---- stdout ----\n{stdout}\n---- stderr ----\n{stderr}\n{}",
        out.status,
        broker.log()
    );
    eprintln!("kafkajs_group.js {args:?}:\n{stdout}{stderr}");
    stdout
}

#[test]
fn kafkajs_group_rebalances_and_commits_survive_restart() {
    if let Some(why) = kafkajs_missing() {
        eprintln!(
            "SKIPPED: {why} (tests/run-all.sh installs node's kafkajs); \
             tests/consumer_groups.rs covers the scenario with the raw protocol"
        );
        return;
    }
    let scratch = temp_dir("groups-js");
    let mut broker = Broker::start("groups-js-broker", &[]);
    let first = run_phase(&broker, &["first"], &scratch);
    let owners = first
        .lines()
        .find_map(|l| l.strip_prefix("OWNERS "))
        .unwrap_or_else(|| panic!("first phase printed no OWNERS line:\n{first}"))
        .to_string();
    assert_eq!(owners.split(',').count(), 6, "{owners}");
    broker.restart();
    run_phase(&broker, &["second", &owners], &scratch);
    broker.stop();
}
