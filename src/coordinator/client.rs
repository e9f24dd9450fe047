//! A blocking client of the tools' protocol and the `ringtail coordinator`
//! shell: `ls`, `get`, `stat`, `create`, `delete`, `sync` and `srvr`, with
//! zkCli's output (Stat field names included).

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
    /// Catch the server up with the leader.
    Sync { path: String },
    /// The server's role (Mode: leader|follower|looking) and zxid.
    Srvr,
}

fn zxid_hex(z: Zxid) -> String {
    format!("0x{:x}", z.0)
}

/// Prints a Stat as zkCli does.
pub fn format_stat(s: &Stat) -> String {
    let owner = s.ephemeral_owner.map_or(0, |o| o.0);
    format!(
        "cZxid = {}\nctime = {}\nmZxid = {}\nmtime = {}\npZxid = {}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{owner:x}\ndataLength = {}\nnumChildren = {}\n",
        zxid_hex(s.czxid),
        s.ctime_ms,
        zxid_hex(s.mzxid),
        s.mtime_ms,
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
        ShellCommand::Sync { path } => Request::Sync(path.clone()),
        ShellCommand::Srvr => Request::Srvr,
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
    let request = request_of(&args.command);
    let path = match &request {
        Request::GetChildren(p) | Request::GetData(p) | Request::Exists(p) | Request::Sync(p) => {
            p.clone()
        }
        Request::Create { path, .. } | Request::Delete { path, .. } => path.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
