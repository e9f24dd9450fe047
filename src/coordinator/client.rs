//! A blocking client of the tools' protocol and the `ringtail coordinator`
//! shell: `ls`, `get`, `stat`, `create`, `set`, `delete`, `sync` and
//! `srvr`, with zkCli's output (Stat field names included, times as
//! zkCli prints them), and `bench` (write throughput and latency).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use ringtail_coordinator::ids::Zxid;
use ringtail_coordinator::tree::Stat;
use ringtail_coordinator::txn::{CreateMode, ErrorCode};

use super::protocol::{self, Body, Request, Response};

/// One connection to a peer's tools port.
pub struct Client {
    stream: TcpStream,
    /// The highest zxid seen (ZooKeeper's `lastZxidSeen`).
    pub last_zxid_seen: Zxid,
}

impl Client {
    pub fn connect(server: &str, wait: Duration) -> std::io::Result<Client> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(server)?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("cannot resolve {server}")))?;
        let stream = TcpStream::connect_timeout(&addr, wait)?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            last_zxid_seen: Zxid::ZERO,
        })
    }

    pub fn call(&mut self, request: &Request) -> std::io::Result<Response> {
        self.stream
            .write_all(&protocol::encode_request(request, self.last_zxid_seen))?;
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix)?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len > protocol::FRAME_BYTES_MAX {
            return Err(std::io::Error::other(format!(
                "response frame of {len} bytes"
            )));
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body)?;
        let response = protocol::decode_response(&body).map_err(std::io::Error::other)?;
        self.last_zxid_seen = self.last_zxid_seen.max(response.zxid);
        Ok(response)
    }
}

/// `ringtail coordinator` arguments.
#[derive(clap::Args, Debug)]
pub struct ShellArgs {
    /// A coordinator's tools address (coordinator.client.port).
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub server: String,
    #[command(subcommand)]
    pub command: ShellCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ShellCommand {
    /// List a node's children.
    Ls { path: String },
    /// Print a node's data and its Stat.
    Get { path: String },
    /// Print a node's Stat.
    Stat { path: String },
    /// Create a persistent node (-s: sequential, the name gets a counter).
    Create {
        #[arg(short = 's')]
        sequential: bool,
        path: String,
        #[arg(default_value = "")]
        data: String,
    },
    /// Delete a node (-v: only at this dataVersion).
    Delete {
        #[arg(short = 'v', default_value_t = -1, allow_hyphen_values = true)]
        version: i32,
        path: String,
    },
    /// Set a node's data (-v: only at this dataVersion).
    Set {
        #[arg(short = 'v', default_value_t = -1, allow_hyphen_values = true)]
        version: i32,
        path: String,
        data: String,
    },
    /// Catch the server up with the leader.
    Sync { path: String },
    /// Measure writes: --ops creates, then --ops set-data, from --clients
    /// concurrent connections (each its own session); prints ops/s and
    /// latency percentiles per phase.
    Bench(BenchArgs),
    /// The server's role (Mode: leader|follower|looking) and zxid.
    Srvr,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Operations per phase (create, then set-data), over all clients.
    #[arg(long, default_value_t = 10_000)]
    pub ops: usize,
    /// Concurrent clients, each one connection with one request in flight.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Bytes of data per node.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Comma-separated tools addresses the clients spread over (default:
    /// --server).
    #[arg(long)]
    pub servers: Option<String>,
}

fn zxid_hex(z: Zxid) -> String {
    format!("0x{:x}", z.0)
}

/// A wall-clock time as zkCli prints it (`java.util.Date.toString` in
/// UTC: `Sat Nov 21 20:50:33 UTC 2026`), followed by the milliseconds
/// since the epoch in parentheses.
pub fn format_time(ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {day:02} {:02}:{:02}:{:02} UTC {year} ({ms})",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Prints a Stat as zkCli does.
pub fn format_stat(s: &Stat) -> String {
    let owner = s.ephemeral_owner.map_or(0, |o| o.0);
    format!(
        "cZxid = {}\nctime = {}\nmZxid = {}\nmtime = {}\npZxid = {}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{owner:x}\ndataLength = {}\nnumChildren = {}\n",
        zxid_hex(s.czxid),
        format_time(s.ctime_ms),
        zxid_hex(s.mzxid),
        format_time(s.mtime_ms),
        zxid_hex(s.pzxid),
        s.cversion,
        s.version,
        s.aversion,
        s.data_length,
        s.num_children
    )
}

fn request_of(command: &ShellCommand) -> Request {
    match command {
        ShellCommand::Ls { path } => Request::GetChildren(path.clone()),
        ShellCommand::Get { path } => Request::GetData(path.clone()),
        ShellCommand::Stat { path } => Request::Exists(path.clone()),
        ShellCommand::Create {
            sequential,
            path,
            data,
        } => Request::Create {
            path: path.clone(),
            data: data.as_bytes().to_vec(),
            mode: if *sequential {
                CreateMode::PersistentSequential
            } else {
                CreateMode::Persistent
            },
        },
        ShellCommand::Delete { version, path } => Request::Delete {
            path: path.clone(),
            version: *version,
        },
        ShellCommand::Set {
            version,
            path,
            data,
        } => Request::SetData {
            path: path.clone(),
            data: data.as_bytes().to_vec(),
            version: *version,
        },
        ShellCommand::Sync { path } => Request::Sync(path.clone()),
        ShellCommand::Srvr | ShellCommand::Bench(_) => Request::Srvr,
    }
}

fn error_text(code: ErrorCode, path: &str) -> String {
    match code {
        ErrorCode::NoNode => format!("Node does not exist: {path}"),
        ErrorCode::NodeExists => format!("Node already exists: {path}"),
        ErrorCode::NotEmpty => format!("Node not empty: {path}"),
        ErrorCode::BadVersion => format!("version No is not valid : {path}"),
        other => format!("KeeperErrorCode = {other} for {path}"),
    }
}

/// Runs one shell command; exit 0 on success, 1 on a ZooKeeper error, 2
/// when the server cannot be reached.
pub fn run(args: &ShellArgs) -> ExitCode {
    if let ShellCommand::Bench(b) = &args.command {
        return bench(&args.server, b);
    }
    let request = request_of(&args.command);
    let path = match &request {
        Request::GetChildren(p) | Request::GetData(p) | Request::Exists(p) | Request::Sync(p) => {
            p.clone()
        }
        Request::Create { path, .. }
        | Request::Delete { path, .. }
        | Request::SetData { path, .. } => path.clone(),
        Request::Srvr => String::new(),
    };
    let response =
        Client::connect(&args.server, Duration::from_secs(5)).and_then(|mut c| c.call(&request));
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot reach {}: {e}", args.server);
            return ExitCode::from(2);
        }
    };
    if response.code != ErrorCode::Ok {
        eprintln!("{}", error_text(response.code, &path));
        return ExitCode::from(1);
    }
    match response.body {
        Body::Children(names) => println!("[{}]", names.join(", ")),
        Body::Data { data, .. } => println!("{}", String::from_utf8_lossy(&data)),
        Body::Stat(stat) => print!("{}", format_stat(&stat)),
        Body::Created(created) => println!("Created {created}"),
        Body::Srvr {
            id,
            mode,
            zxid,
            nodes,
        } => {
            println!(
                "Server id: {id}\nZxid: {}\nMode: {mode}\nNode count: {nodes}",
                zxid_hex(zxid)
            );
        }
        Body::Empty => {}
    }
    ExitCode::SUCCESS
}

/// Latency percentile `q` (0..1) of sorted samples, in microseconds.
fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// Builds request `i` of client `c` in a bench phase.
type MakeRequest<'a> = dyn Fn(usize, usize) -> Request + Sync + 'a;

/// One bench phase: every client runs its share of `make(client, i)`
/// requests back to back; returns the wall time and every latency.
fn bench_phase(
    servers: &[String],
    clients: usize,
    ops: usize,
    make: &MakeRequest,
) -> Result<(Duration, Vec<Duration>), String> {
    let start = std::time::Instant::now();
    let results: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let server = &servers[c % servers.len()];
                scope.spawn(move || {
                    let mut client = Client::connect(server, Duration::from_secs(5))
                        .map_err(|e| format!("{server}: {e}"))?;
                    let share = ops / clients + usize::from(c < ops % clients);
                    let mut lat = Vec::with_capacity(share);
                    for i in 0..share {
                        let request = make(c, i);
                        let t = std::time::Instant::now();
                        let r = client
                            .call(&request)
                            .map_err(|e| format!("{server}: {e}"))?;
                        lat.push(t.elapsed());
                        if r.code != ErrorCode::Ok {
                            return Err(format!("{server}: {request:?}: {}", r.code));
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a client panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut all = Vec::with_capacity(ops);
    for r in results {
        all.extend(r?);
    }
    Ok((elapsed, all))
}

fn bench(server: &str, args: &BenchArgs) -> ExitCode {
    let servers: Vec<String> = args
        .servers
        .as_deref()
        .unwrap_or(server)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let clients = args.clients.max(1);
    let root = format!(
        "/bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let setup = Client::connect(&servers[0], Duration::from_secs(5)).and_then(|mut c| {
        c.call(&Request::Create {
            path: root.clone(),
            data: Vec::new(),
            mode: CreateMode::Persistent,
        })
    });
    match setup {
        Ok(r) if r.code == ErrorCode::Ok => {}
        Ok(r) => {
            eprintln!("bench: create {root}: {}", r.code);
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("cannot reach {}: {e}", servers[0]);
            return ExitCode::from(2);
        }
    }
    let data = vec![b'x'; args.size];
    let path = |c: usize, i: usize| format!("{root}/c{c}-{i}");
    let phases: [(&str, Box<MakeRequest>); 2] = [
        (
            "create",
            Box::new(|c, i| Request::Create {
                path: path(c, i),
                data: data.clone(),
                mode: CreateMode::Persistent,
            }),
        ),
        (
            "set-data",
            Box::new(|c, i| Request::SetData {
                path: path(c, i),
                data: data.clone(),
                version: -1,
            }),
        ),
    ];
    println!(
        "bench: {} ops per phase, {clients} clients, {} B data, servers {}",
        args.ops,
        args.size,
        servers.join(",")
    );
    for (name, make) in &phases {
        match bench_phase(&servers, clients, args.ops, make.as_ref()) {
            Ok((elapsed, mut lat)) => {
                lat.sort_unstable();
                println!(
                    "{name:<8} ops={} ops/s={:.0} p50_us={:.0} p99_us={:.0} p99.9_us={:.0} max_us={:.0}",
                    lat.len(),
                    lat.len() as f64 / elapsed.as_secs_f64(),
                    percentile(&lat, 0.50),
                    percentile(&lat, 0.99),
                    percentile(&lat, 0.999),
                    percentile(&lat, 1.0)
                );
            }
            Err(e) => {
                eprintln!("bench {name}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_like_zkcli() {
        assert_eq!(format_time(0), "Thu Jan 01 00:00:00 UTC 1970 (0)");
        assert_eq!(
            format_time(1_763_758_233_123),
            "Fri Nov 21 20:50:33 UTC 2025 (1763758233123)"
        );
        assert_eq!(
            format_time(951_782_400_000),
            "Tue Feb 29 00:00:00 UTC 2000 (951782400000)"
        );
    }

    #[test]
    fn stat_uses_zookeepers_names() {
        let text = format_stat(&Stat {
            czxid: Zxid(0x1_0000_0002),
            num_children: 3,
            ..Stat::default()
        });
        for name in [
            "cZxid = 0x100000002",
            "ctime",
            "mZxid",
            "mtime",
            "pZxid",
            "cversion",
            "dataVersion",
            "aclVersion",
            "ephemeralOwner = 0x0",
            "dataLength",
            "numChildren = 3",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }
}
