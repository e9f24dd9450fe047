//! `ringtail-perf`: Kafka-protocol load generator. See the library's docs
//! (`perf/src/lib.rs`) for what each subcommand measures.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringtail_perf::consume::{self, ConsumeArgs};
use ringtail_perf::end_to_end::{self, EndToEndArgs};
use ringtail_perf::produce::{self, ProduceArgs};

#[derive(Parser)]
#[command(
    name = "ringtail-perf",
    about = "Kafka-protocol load generator: open-loop producers, consumers, end-to-end latency"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce records, like kafka-producer-perf-test.
    Produce(ProduceArgs),
    /// Consume records, like kafka-consumer-perf-test (no groups).
    Consume(ConsumeArgs),
    /// Produce and consume at once; report produce->consume latency.
    EndToEnd(EndToEndArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Produce(args) => produce::main(args),
        Command::Consume(args) => consume::main(args),
        Command::EndToEnd(args) => end_to_end::main(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ERROR {e}");
            ExitCode::from(2)
        }
    }
}
