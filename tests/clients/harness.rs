//! Shared by tests/clients.rs and tests/malformed.rs (included with
//! `#[path]`; this directory has no `main.rs`, so Cargo does not build it
//! as a test of its own): a real `ringtail broker` process on a free
//! loopback port with its own data directory, stopped with SIGTERM like an
//! operator would, killed by the drop guard if a test panics first.

#![allow(dead_code)] // Each test file uses part of it.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a broker may take to listen, or to shut down after SIGTERM.
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
pub const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Two shards whatever the machine: partitions spread over both, so
/// requests cross the inter-core mesh, and several brokers in parallel
/// tests stay cheap on a large CI machine.
pub const DEFAULT_OVERRIDES: &[&str] = &["shard.count=2"];

static DIRS_MADE: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let n = DIRS_MADE.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ringtail-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A loopback port nobody listens on right now. Another process could take
/// it before the broker binds it; `Broker::start` retries on that.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// The last `max_bytes` of a file, for failure messages.
pub fn tail(path: &Path, max_bytes: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(max_bytes);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

pub struct Broker {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
    overrides: Vec<String>,
    child: Option<Child>,
    /// Every start appends its output here.
    log_path: PathBuf,
}

impl Broker {
    /// Starts a broker with its own data directory; `overrides` are extra
    /// `key=value` settings, after [`DEFAULT_OVERRIDES`].
    pub fn start(name: &str, overrides: &[&str]) -> Broker {
        let dir = temp_dir(name);
        let mut broker = Broker {
            name: name.to_string(),
            dir: dir.join("data"),
            port: 0,
            overrides: DEFAULT_OVERRIDES
                .iter()
                .chain(overrides)
                .map(|s| s.to_string())
                .collect(),
            child: None,
            log_path: dir.join("broker.log"),
        };
        for attempt in 0.. {
            broker.port = free_port();
            match broker.spawn() {
                Ok(()) => return broker,
                Err(e) if attempt < 3 => eprintln!("{name}: broker start failed, retrying: {e}"),
                Err(e) => panic!("{name}: broker does not start: {e}\n{}", broker.log()),
            }
        }
        unreachable!()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything the broker printed, over all its starts.
    pub fn log(&self) -> String {
        format!(
            "---- broker log {} (last 16 KiB) ----\n{}",
            self.log_path.display(),
            tail(&self.log_path, 16 * 1024)
        )
    }

    /// The directory of one partition's log.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.join(format!("{topic}-{partition}"))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("open {}: {e}", self.log_path.display()))?;
        let log_len_before = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringtail"));
        command
            .arg("broker")
            .arg("--override")
            .arg(format!("log.dirs={}", self.dir.display()))
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port));
        for o in &self.overrides {
            command.arg("--override").arg(o);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", env!("CARGO_BIN_EXE_ringtail")))?;
        self.child = Some(child);
        // Ready once it says it listens (all shards up) and takes a
        // connection.
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("broker exited during start-up: {status}"));
            }
            let text = std::fs::read(&self.log_path).unwrap_or_default();
            let new = String::from_utf8_lossy(&text[(log_len_before as usize).min(text.len())..]);
            if new.contains("listening on")
                && TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("not listening after {BROKER_START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for a clean exit; panics otherwise.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: signals our own child process, which has not been reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        let status = wait_timeout(&mut child, BROKER_STOP_TIMEOUT);
        match status {
            Some(s) if s.success() => {}
            Some(s) => panic!(
                "{}: broker exited with {s} after SIGTERM\n{}",
                self.name,
                self.log()
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{}: broker still running {BROKER_STOP_TIMEOUT:?} after SIGTERM\n{}",
                    self.name,
                    self.log()
                );
            }
        }
        assert!(
            tail(&self.log_path, 4096).contains("shutdown complete"),
            "{}: no 'shutdown complete' after SIGTERM\n{}",
            self.name,
            self.log()
        );
    }

    /// Clean stop, then a start on the same directory and port.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!(
                "{}: broker does not restart: {e}\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// SIGKILL (no clean shutdown: the next start recovers the logs), then
    /// a start on the same directory and port.
    ///
    /// The killed process's listening socket outlives it by a few
    /// milliseconds (the kernel tears its io_uring down asynchronously), and
    /// the broker refuses to start while anyone listens on its port, so a
    /// start that fails with EADDRINUSE is retried for up to two seconds.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut retries = 0;
        loop {
            match self.spawn() {
                Ok(()) => break,
                Err(_)
                    if Instant::now() < deadline
                        && self.log().contains("Address already in use") =>
                {
                    retries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!(
                    "{}: broker does not restart after SIGKILL: {e}\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
        if retries > 0 {
            eprintln!(
                "{}: port still bound after SIGKILL; the start succeeded after {retries} retries",
                self.name
            );
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `ringtail log verify` on one partition directory; the broker must
    /// be stopped. Returns the tool's output.
    pub fn verify_partition(&self, topic: &str, partition: i32) -> String {
        assert!(
            self.child.is_none(),
            "verify the log after stopping the broker"
        );
        let dir = self.partition_dir(topic, partition);
        let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .args(["log", "verify"])
            .arg(&dir)
            .output()
            .expect("run ringtail log verify");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("all batches valid"),
            "ringtail log verify {}: {}\n{text}",
            dir.display(),
            out.status
        );
        text
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        // Keep the data and log of a failed test for a look afterwards.
        let root = self.log_path.parent().map(Path::to_path_buf);
        if std::thread::panicking() {
            if let Some(root) = root {
                eprintln!(
                    "{}: broker data and log kept in {}",
                    self.name,
                    root.display()
                );
            }
        } else if let Some(root) = root {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

/// Waits up to `timeout` for `child`; `None` if it still runs.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => return None,
            Err(e) => panic!("wait for child: {e}"),
        }
    }
}

/// Runs `command` with a time limit, collecting stdout and stderr (through
/// files, so a chatty child cannot block on a full pipe). A child that
/// overruns is killed and reported as failed.
pub fn run_with_timeout(command: &mut Command, timeout: Duration, scratch: &Path) -> Output {
    let n = DIRS_MADE.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("out-{n}"));
    let err_path = scratch.join(format!("err-{n}"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let status = match wait_timeout(&mut child, timeout) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let status = child.wait().expect("reap timed-out child");
            let _ = std::fs::write(&err_path, {
                let mut e = std::fs::read(&err_path).unwrap_or_default();
                e.extend_from_slice(format!("\n(killed after {timeout:?})\n").as_bytes());
                e
            });
            status
        }
    };
    let output = Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    output
}
