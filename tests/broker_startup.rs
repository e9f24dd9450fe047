//! Start-up and shutdown of the real broker binary: bad config values stop
//! it with the key named, unknown keys warn, a taken port is an error, and
//! SIGTERM shuts it down cleanly (the logs need no recovery next time).

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ringtail-startup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn run_to_exit(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_values_stop_start_up_naming_the_key() {
    let dir = temp_dir("bad");
    let d = format!("log.dirs={}", dir.display());
    for (bad, key) in [
        ("num.partitions=zero", "num.partitions"),
        ("log.segment.bytes=-4", "log.segment.bytes"),
        ("listeners=PLAINTEXT://nowhere.example:9092", "listeners"),
        (
            "auto.create.topics.enable=maybe",
            "auto.create.topics.enable",
        ),
    ] {
        let (code, err) = run_to_exit(&["broker", "--override", &d, "--override", bad]);
        assert_ne!(code, 0, "{bad} was accepted");
        assert!(
            err.contains(key),
            "{bad}: message does not name {key}: {err}"
        );
    }
    let props = dir.join("server.properties");
    std::fs::write(&props, "broker.id=1\nthis line is broken\n").expect("write");
    let (code, err) = run_to_exit(&["broker", "--config", props.to_str().expect("utf8")]);
    assert_ne!(code, 0);
    assert!(err.contains("server.properties:2"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn unknown_keys_warn_and_sigterm_shuts_down_cleanly() {
    let dir = temp_dir("clean");
    let port = free_port();
    let props = dir.join("server.properties");
    std::fs::write(
        &props,
        format!(
            "broker.id=0\nlisteners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\nzookeeper.connect=localhost:2181\nmy.plugin.setting=1\n",
            dir.join("data").display()
        ),
    )
    .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["broker", props.to_str().expect("utf8")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A second broker on the same port must fail, not hang.
    let (code, err) = run_to_exit(&[
        "broker",
        "--override",
        &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        "--override",
        &format!("log.dirs={}", dir.join("other").display()),
        "--override",
        "shard.count=1",
    ]);
    assert_ne!(code, 0, "a second broker shared the port");
    assert!(
        err.contains("cannot listen") && err.contains("in use"),
        "{err}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(
        stderr.contains("warning: unknown config key my.plugin.setting"),
        "{stderr}"
    );
    assert!(
        stderr.contains("zookeeper.connect is a Kafka setting Ringtail does not use"),
        "{stderr}"
    );
    assert!(stderr.contains("shutdown complete"), "{stderr}");
    assert!(dir.join("data/meta.properties").is_file());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
