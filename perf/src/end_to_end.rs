//! `ringtail-perf end-to-end`: produce -> consume latency.
//!
//! One producer sends on the open-loop schedule (see [`crate::rate`]) and
//! stamps each value with its record's intended send time (ns since the
//! Unix epoch, [`crate::produce::read_stamp`]); a consumer in the same
//! process, started at the partitions' end offsets, reads the stamp of
//! every record it decodes and records `now - intended` in an HDR
//! histogram. Both sides use the same clock, so no synchronisation error
//! enters. Two lines come out, in the producer's layout: the producer's
//! own ack latency (`records sent`) and the end-to-end one (`records
//! received`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use ringtail::admin::consumer::Message;

use crate::consume::{self, FetchOptions, LATEST};
use crate::produce::{self, ProduceArgs, Tuning, STAMP_BYTES};
use crate::stats::Tally;

#[derive(Args, Debug, Clone)]
pub struct EndToEndArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub num_records: u64,
    /// Bytes of each value, at least 16 (the stamp).
    #[arg(long)]
    pub record_size: usize,
    /// Records per second (open loop); -1 for as fast as possible.
    #[arg(long, allow_negative_numbers = true)]
    pub throughput: f64,
    /// 0, 1 or all (-1).
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// Partitions to produce to (default all; 16 with --create-topic).
    #[arg(long)]
    pub partitions: Option<i32>,
    #[arg(long)]
    pub create_topic: bool,
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i16,
    /// How long the consumer waits for missing records after the
    /// producer is done, in ms.
    #[arg(long, default_value_t = 30_000)]
    pub timeout: u64,
    #[command(flatten)]
    pub tuning: Tuning,
    #[command(flatten)]
    pub fetch: FetchOptions,
}

/// `ringtail-perf end-to-end`.
pub fn main(args: &EndToEndArgs) -> Result<bool, String> {
    if args.record_size < STAMP_BYTES {
        return Err(format!(
            "--record-size must be at least {STAMP_BYTES} (the send-time stamp)"
        ));
    }
    let plan = produce::plan(&ProduceArgs {
        bootstrap_server: args.bootstrap_server.clone(),
        topic: args.topic.clone(),
        num_records: args.num_records,
        record_size: args.record_size,
        throughput: args.throughput,
        acks: args.acks.clone(),
        partitions: args.partitions,
        producers: 1,
        tuning: args.tuning.clone(),
        create_topic: args.create_topic,
        replication_factor: args.replication_factor,
        key_size: 0,
        reporting_interval: 5.0,
    })?;
    let assigned = consume::list_offsets(&plan.layout, &plan.topic, &plan.partitions, LATEST)?;
    let latencies = Arc::new(Mutex::new(Tally::default()));
    let on_record = {
        let latencies = latencies.clone();
        Arc::new(move |m: &Message<'_>| {
            let Some((sent_ns, _)) = m.value.and_then(produce::read_stamp) else {
                return;
            };
            let now_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let bytes = m.value.map_or(0, <[u8]>::len) as u64;
            let latency_us = (now_ns.saturating_sub(sent_ns) / 1000).max(1);
            latencies
                .lock()
                .expect("latency lock")
                .record(bytes, latency_us);
        })
    };
    let job = consume::Job {
        layout: plan.layout.clone(),
        topic: plan.topic.clone(),
        assigned,
        options: args.fetch,
        threads: 1,
        messages: args.num_records,
        timeout: Duration::from_millis(args.timeout),
    };
    let consumer = std::thread::spawn(move || consume::consume(job, on_record));
    let produced = produce::run(&plan)?;
    println!("{}", produced.done.summary_line("sent", produced.elapsed));
    if let Some(line) = produced.failure_line() {
        eprintln!("{line}");
    }
    let report = consumer
        .join()
        .map_err(|_| "the consumer thread panicked".to_string())??;
    let received = latencies.lock().expect("latency lock").clone();
    println!("{}", received.summary_line("received", report.elapsed));
    if report.timed_out {
        eprintln!(
            "WARNING: {} of {} records came back",
            report.records, args.num_records
        );
    }
    Ok(produced.failed_total() == 0 && !report.timed_out)
}
