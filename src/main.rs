//! The `ringtail` command line.
//!
//! # Layout
//!
//! - `broker`: runs the broker (`--config server.properties`,
//!   `--override key=value`); no arguments: one node on 127.0.0.1:9092.
//! - `log dump`: lists the batches of a partition directory or a segment
//!   file, like `kafka-dump-log.sh --files`.
//! - `log verify`: checks every batch (framing, magic, CRC-32C) and exits
//!   non-zero naming the first corrupt file and position.
//! - `topics`, `console-producer`, `console-consumer`, `consumer-groups`:
//!   Kafka's admin and console scripts with their flags
//!   (`ringtail::admin`).
//! - `coordinator --server H:P ls|get|stat|create|delete PATH`: zkCli.sh
//!   over the embedded coordinator's tree.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringtail::admin;
use ringtail_io::log::{batch, Log, LogConfig, LogError};
use ringtail_io::rt;

#[derive(Parser)]
#[command(
    name = "ringtail",
    version,
    about = "Kafka-compatible broker with a built-in ZAB coordinator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Broker {
        /// A server.properties file (Kafka's key names).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The same file, given as kafka-server-start.sh takes it.
        #[arg(value_name = "SERVER_PROPERTIES", conflicts_with = "config")]
        properties: Option<PathBuf>,
        /// key=value, applied after the file; repeatable.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Inspect partition logs on disk.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Create, list, describe, alter or delete topics (kafka-topics.sh).
    Topics(admin::topics::TopicsArgs),
    /// Send stdin lines as records (kafka-console-producer.sh).
    ConsoleProducer(admin::producer::ProducerArgs),
    /// Print a topic's records (kafka-console-consumer.sh), alone or as a
    /// member of a consumer group (--group).
    ConsoleConsumer(admin::consumer::ConsumerArgs),
    /// List, describe, reset or delete consumer groups
    /// (kafka-consumer-groups.sh).
    ConsumerGroups(admin::groups::GroupsArgs),
    /// Browse the coordinator's tree (zkCli.sh: ls, get, stat, create, delete).
    Coordinator(ringtail::coordinator::client::ShellArgs),
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print each batch of a segment file (`*.log`) or of every segment in a
    /// partition directory.
    Dump {
        /// A partition directory or segment files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Check every batch of a partition directory; exit 1 on corruption.
    Verify {
        /// The partition directory (e.g. /var/lib/ringtail/orders-0).
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Broker {
            config,
            properties,
            overrides,
        } => broker(config.or(properties), &overrides),
        Command::Log {
            command: LogCommand::Dump { paths },
        } => dump(&paths),
        Command::Log {
            command: LogCommand::Verify { dir },
        } => verify(&dir),
        // The admin tools print their own errors, as Kafka's scripts do.
        Command::Topics(args) => Ok(admin::topics::run(&args)),
        Command::ConsoleProducer(args) => Ok(admin::producer::run(&args)),
        Command::ConsoleConsumer(args) => Ok(admin::consumer::run(&args)),
        Command::ConsumerGroups(args) => Ok(admin::groups::run(&args)),
        Command::Coordinator(args) => Ok(ringtail::coordinator::client::run(&args)),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ringtail: {message}");
            ExitCode::from(2)
        }
    }
}

fn broker(file: Option<PathBuf>, overrides: &[String]) -> Result<ExitCode, String> {
    let (config, notes) = ringtail::config::BrokerConfig::load(file.as_deref(), overrides)
        .map_err(|e| e.to_string())?;
    for key in &notes.unknown {
        eprintln!("warning: unknown config key {key} (ignored)");
    }
    for key in &notes.ignored {
        eprintln!("note: {key} is a Kafka setting Ringtail does not use (ignored)");
    }
    ringtail::broker::run(config)?;
    Ok(ExitCode::SUCCESS)
}

fn segment_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            in_dir.sort();
            files.extend(in_dir);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Reads the file directly (no log open, no recovery): a dump must show
/// what is on disk, damage included.
fn dump(paths: &[PathBuf]) -> Result<ExitCode, String> {
    let mut damaged = false;
    for file in segment_files(paths)? {
        println!("Dumping {}", file.display());
        let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        damaged |= !dump_segment(&bytes);
    }
    Ok(if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn dump_segment(bytes: &[u8]) -> bool {
    let mut position = 0usize;
    while position < bytes.len() {
        let rest = &bytes[position..];
        let header = match batch::BatchHeader::parse(rest) {
            Ok(h) if h.size <= rest.len() => h,
            Ok(h) => {
                println!(
                    "position: {position} torn batch: claims {} bytes, {} present",
                    h.size,
                    rest.len()
                );
                return false;
            }
            Err(e) => {
                println!("position: {position} invalid batch: {e}");
                return false;
            }
        };
        let crc = batch::verify_crc(&rest[..header.size], &header);
        println!(
            "baseOffset: {} lastOffset: {} count: {} partitionLeaderEpoch: {} position: {position} \
             maxTimestamp: {} size: {} crc: {} isValid: {}",
            header.base_offset,
            header.last_offset(),
            header.records_count,
            header.leader_epoch,
            header.max_timestamp,
            header.size,
            header.crc,
            crc.is_ok()
        );
        if crc.is_err() {
            return false;
        }
        position += header.size;
    }
    true
}

fn verify(dir: &Path) -> Result<ExitCode, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a partition directory", dir.display()));
    }
    rt::block_on(async {
        // Opening recovers a crashed log (truncating a torn tail) exactly as
        // the broker would; verify then checks every sealed byte.
        let log = Log::open(
            dir,
            LogConfig {
                retention_ms: None,
                ..LogConfig::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let outcome = log.verify().await.map_err(|e| e.to_string())?;
        let offsets = log.offsets();
        let stats = log.stats();
        log.close().await.map_err(|e| e.to_string())?;
        match outcome {
            None => {
                println!(
                    "{}: {} segments, {} bytes, offsets [{}, {}): all batches valid",
                    dir.display(),
                    stats.segments,
                    stats.size_bytes,
                    offsets.log_start,
                    offsets.written
                );
                Ok(ExitCode::SUCCESS)
            }
            Some(LogError::Corrupt {
                path,
                position,
                error,
            }) => {
                println!(
                    "{}: corrupt batch at position {position}: {error}",
                    path.display()
                );
                Ok(ExitCode::from(1))
            }
            Some(other) => Err(other.to_string()),
        }
    })
}
