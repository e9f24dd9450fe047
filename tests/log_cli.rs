//! `ringtail log dump` and `ringtail log verify` on real segment files.

use std::path::Path;
use std::process::Command;

use bytes::BytesMut;
use ringtail_io::log::{batch, Log, LogConfig};
use ringtail_io::rt;

fn write_log(dir: &Path) {
    rt::block_on(async {
        let config = LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        };
        let log = Log::open(dir, config).await.expect("open");
        for i in 0..40u8 {
            let b = batch::build(0, 1_700_000_000_000, &[&[i; 300]]);
            log.append(BytesMut::from(&b[..]), 1).await.expect("append");
        }
        log.close().await.expect("close");
    });
}

fn ringtail(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(args)
        .output()
        .expect("run ringtail");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn verify_and_dump_report_corruption_precisely() {
    let dir = std::env::temp_dir().join(format!("ringtail-log-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_log(&dir);
    let d = dir.to_str().expect("utf8");
    let (code, text) = ringtail(&["log", "verify", d]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("offsets [0, 40): all batches valid"),
        "{text}"
    );
    let (code, text) = ringtail(&["log", "dump", d]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("isValid: true").count(), 40, "{text}");
    assert!(
        text.contains("baseOffset: 39 lastOffset: 39 count: 1 partitionLeaderEpoch: 1"),
        "{text}"
    );

    // Damage one record byte in the first (sealed) segment.
    let first = dir.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[400] ^= 0x01;
    std::fs::write(&first, bytes).expect("write");
    let (code, text) = ringtail(&["log", "verify", d]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("00000000000000000000.log: corrupt batch at position 370: crc mismatch"),
        "{text}"
    );
    let (code, text) = ringtail(&["log", "dump", first.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("isValid: false"), "{text}");
    let (code, text) = ringtail(&["log", "verify", "/nonexistent/dir"]);
    assert_eq!(code, 2, "{text}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
