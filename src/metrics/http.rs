//! The `/metrics` endpoint: a plain HTTP/1.1 server on its own thread
//! (control plane, like the coordinator's), one connection at a time.
//! Scrapes are rare (seconds apart) and each is answered with
//! `Connection: close`, so a blocking loop is all it needs; a slow client
//! is cut off by the socket timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use prometheus::Encoder;

use crate::config::BrokerConfig;
use crate::shard::Shared;

/// A request head larger than this is refused.
const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `metrics.listen`. A taken port stops start-up when the key was
/// set; the default port is skipped with a warning instead (a second
/// broker on the machine, tests), like the coordinator's client port.
pub fn bind(config: &BrokerConfig) -> Result<Option<TcpListener>, String> {
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    match TcpListener::bind(addr) {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if config.metrics_listen_explicit => {
            Err(format!("metrics.listen: cannot listen on {addr}: {e}"))
        }
        Err(e) => {
            eprintln!(
                "warning: no /metrics endpoint: cannot listen on the default {addr} ({e}); \
                 set metrics.listen to another ip:port"
            );
            Ok(None)
        }
    }
}

/// Serves `/metrics` on its own thread until the process exits.
pub fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Result<SocketAddr, String> {
    let addr = listener
        .local_addr()
        .map_err(|e| format!("metrics.listen: {e}"))?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(e) = serve(stream, &shared) {
                            eprintln!("metrics: {e}");
                        }
                    }
                    Err(e) => {
                        eprintln!("metrics: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    Ok(addr)
}

fn serve(mut stream: TcpStream, shared: &Arc<Shared>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let head = match read_head(&mut stream)? {
        Some(head) => head,
        None => {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"bad request\n",
            )
        }
    };
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        );
    }
    let (status, content_type, body) = match path {
        "/metrics" => match super::collect::gather(shared) {
            Ok(families) => {
                let mut body = Vec::with_capacity(64 * 1024);
                let encoder = prometheus::TextEncoder::new();
                match encoder.encode(&families, &mut body) {
                    Ok(()) => ("200 OK", prometheus::TEXT_FORMAT, body),
                    Err(e) => (
                        "500 Internal Server Error",
                        "text/plain",
                        format!("encoding failed: {e}\n").into_bytes(),
                    ),
                }
            }
            Err(e) => (
                "503 Service Unavailable",
                "text/plain",
                format!("{e}\n").into_bytes(),
            ),
        },
        "/" => (
            "200 OK",
            "text/plain",
            b"Ringtail broker: Prometheus metrics at /metrics\n".to_vec(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            b"not found; try /metrics\n".to_vec(),
        ),
    };
    let body = if method == "HEAD" { &[][..] } else { &body[..] };
    respond(&mut stream, status, content_type, body)
}

/// Reads up to the blank line ending the request head; `None` when the
/// client closed early or the head is too large.
fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || head.len() + n > REQUEST_HEAD_BYTES_MAX {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}
