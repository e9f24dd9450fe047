//! One client connection: read frames, run requests concurrently (at most
//! `socket.inflight.requests.max` at once), write answers in request order.
//!
//! A malformed or oversized frame closes this connection with a log line;
//! other connections are unaffected. A connection idle for
//! `connections.max.idle.ms` is closed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use ringtail_io::rt::net::TcpStream;
use ringtail_io::rt::sync::Notify;
use ringtail_io::rt::{self, JoinHandle};
use ringtail_protocol::fetch::FetchPart;
use ringtail_protocol::frame;

use super::Response;
use crate::shard::Shard;

/// Bytes asked of the socket per receive.
const RECV_BYTES: usize = 64 * 1024;

struct Pipeline {
    pending: RefCell<VecDeque<JoinHandle<Response>>>,
    /// The reader queued a request or finished.
    queued: Notify,
    /// The writer sent an answer (room for another request).
    sent: Notify,
    reader_done: std::cell::Cell<bool>,
    writer_failed: std::cell::Cell<bool>,
}

pub async fn serve(stream: TcpStream, peer: SocketAddr, shard: Rc<Shard>) {
    shard.connections.set(shard.connections.get() + 1);
    crate::metrics::shard::connection_accepted();
    let stream = Rc::new(stream);
    let pipeline = Rc::new(Pipeline {
        pending: RefCell::new(VecDeque::new()),
        queued: Notify::new(),
        sent: Notify::new(),
        reader_done: std::cell::Cell::new(false),
        writer_failed: std::cell::Cell::new(false),
    });
    let writer = rt::spawn(write_loop(stream.clone(), pipeline.clone(), peer));
    if let Err(reason) = read_loop(&stream, &pipeline, &shard, peer).await {
        eprintln!("closing connection from {peer}: {reason}");
    }
    pipeline.reader_done.set(true);
    pipeline.queued.notify();
    writer.await;
    shard.connections.set(shard.connections.get() - 1);
}

async fn read_loop(
    stream: &TcpStream,
    pipeline: &Pipeline,
    shard: &Rc<Shard>,
    peer: SocketAddr,
) -> Result<(), String> {
    let config = &shard.shared.config;
    let idle = Duration::from_millis(config.connections_max_idle_ms);
    let mut buf = BytesMut::with_capacity(RECV_BYTES);
    loop {
        let len = loop {
            match frame::check(&buf, config.socket_request_max_bytes) {
                Ok(Some(len)) => break len,
                Ok(None) => {}
                Err(e) => return Err(format!("{e} (socket.request.max.bytes)")),
            }
            if pipeline.writer_failed.get() {
                return Ok(());
            }
            // Ask for the rest of the frame announced by its size prefix in
            // one receive (a 1 MiB produce is not read 64 KiB at a time).
            let want = match buf.get(..4) {
                Some(p) => {
                    let declared = i32::from_be_bytes([p[0], p[1], p[2], p[3]]).max(0) as usize;
                    (declared + 4).saturating_sub(buf.len()).max(RECV_BYTES)
                }
                None => RECV_BYTES,
            };
            let received =
                rt::time::timeout(idle, stream.recv_bytes(std::mem::take(&mut buf), want)).await;
            let (result, back) = match received {
                Ok(pair) => pair,
                Err(_) => {
                    return Err(format!(
                        "idle for {} ms (connections.max.idle.ms)",
                        idle.as_millis()
                    ))
                }
            };
            buf = back;
            match result {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("receive failed: {e}")),
            }
        };
        let request = buf.split_to(len);
        while pipeline.pending.borrow().len() >= config.socket_inflight_requests_max {
            pipeline.sent.notified().await;
            if pipeline.writer_failed.get() {
                return Ok(());
            }
        }
        let handle = rt::spawn(super::handle(request, shard.clone(), peer));
        pipeline.pending.borrow_mut().push_back(handle);
        pipeline.queued.notify();
    }
}

async fn write_loop(stream: Rc<TcpStream>, pipeline: Rc<Pipeline>, peer: SocketAddr) {
    loop {
        let next = pipeline.pending.borrow_mut().pop_front();
        let Some(handle) = next else {
            if pipeline.reader_done.get() {
                return;
            }
            pipeline.queued.notified().await;
            continue;
        };
        let response = handle.await;
        pipeline.sent.notify();
        let result = match response {
            Response::None => Ok(()),
            Response::Frame(buf) => stream.send_all(buf).await.0.map_err(|e| e.to_string()),
            Response::Fetch { buf, frame, slices } => {
                send_fetch(&stream, buf, &frame.parts, &slices).await
            }
            Response::Close(reason) => Err(format!("request refused: {reason}")),
        };
        if let Err(reason) = result {
            eprintln!("closing connection from {peer}: {reason}");
            pipeline.writer_failed.set(true);
            pipeline.sent.notify();
            // Shut the socket so the reader's receive ends too.
            // SAFETY: shutdown on our own socket fd.
            unsafe { libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(&*stream), libc::SHUT_RDWR) };
            return;
        }
    }
}

/// Sends a Fetch frame: header bytes from the buffer, record bytes spliced
/// from the page cache (no user-space copy), corked into full packets.
async fn send_fetch(
    stream: &TcpStream,
    buf: BytesMut,
    parts: &[FetchPart],
    slices: &[ringtail_io::log::FileSlice],
) -> Result<(), String> {
    let buf = buf.freeze();
    let _ = stream.set_cork(true);
    let mut next_slice = slices.iter();
    for part in parts {
        match part {
            FetchPart::Bytes(range) => {
                stream
                    .send_all(buf.slice(range.clone()))
                    .await
                    .0
                    .map_err(|e| e.to_string())?;
            }
            FetchPart::Records { len, .. } => {
                let slice = next_slice
                    .next()
                    .ok_or("fetch plan has more holes than slices")?;
                debug_assert_eq!(u64::from(*len), slice.len);
                if crate::server::handlers::fetch::zero_copy() {
                    stream
                        .send_file(slice.file.file(), slice.position, slice.len)
                        .await
                        .map_err(|e| format!("splice from {}: {e}", slice.file.path().display()))?;
                } else {
                    let bytes = slice.read_to_vec().await.map_err(|e| e.to_string())?;
                    stream.send_all(bytes).await.0.map_err(|e| e.to_string())?;
                }
            }
        }
    }
    let _ = stream.set_cork(false);
    Ok(())
}
