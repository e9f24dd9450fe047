//! The Kafka listener of each shard and the request dispatch.
//!
//! Every shard binds the same address with `SO_REUSEPORT`, so the kernel
//! spreads connections over the shards. A request is parsed on the shard of
//! its connection; partition work goes to the owner shard (see
//! [`crate::shard::run_on`]) and answers come back in request order.

pub mod connection;
pub mod handlers;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use ringtail_io::log::FileSlice;
use ringtail_io::rt;
use ringtail_io::rt::net::TcpListener;
use ringtail_protocol::fetch::FetchFrame;
use ringtail_protocol::{ApiKey, CorrelationId, RequestHeader};

use crate::shard::Shard;

/// What a request produces for its connection's writer.
pub enum Response {
    /// Nothing is sent (acks=0 produce).
    None,
    /// A complete frame.
    Frame(BytesMut),
    /// A Fetch frame whose record bytes come from segment files.
    Fetch {
        buf: BytesMut,
        frame: FetchFrame,
        /// Slices in the order of the frame's record holes.
        slices: Vec<FileSlice>,
    },
    /// The request cannot be answered; Kafka closes the connection.
    Close(String),
}

/// Runs a shard's Kafka listener until the broker stops.
pub async fn serve(
    shard: Rc<Shard>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    let config = &shard.shared.config;
    let listener = config.listeners[0].clone();
    let bound = listener.socket_addr().and_then(|addr| {
        TcpListener::bind_reuseport(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))
    });
    let socket = match bound {
        Ok(socket) => {
            let _ = ready.send(Ok(()));
            socket
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let housekeeping = rt::spawn(housekeeping(shard.clone()));
    let cleaner = rt::spawn(cleaner(shard.clone()));
    loop {
        let accepted = {
            let accept = std::pin::pin!(socket.accept());
            let stop = std::pin::pin!(shard.stop.notified());
            match select(accept, stop).await {
                Either::Left(accepted) => accepted,
                Either::Right(()) => break,
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                rt::spawn(connection::serve(stream, peer, shard.clone()));
            }
            Err(e) => {
                eprintln!("shard {}: accept failed: {e}", shard.id.0);
                rt::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(housekeeping);
    drop(cleaner);
    // Close every partition cleanly so the next start needs no recovery.
    let (mut bytes, mut fsyncs, mut count) = (0u64, 0u64, 0usize);
    for p in shard.partitions() {
        let stats = p.log.stats();
        bytes += stats.size_bytes;
        fsyncs += stats.fsyncs;
        count += 1;
        if let Err(e) = shard.close_partition(&p.topic.name, p.index).await {
            eprintln!("shard {}: {e}", shard.id.0);
        }
    }
    eprintln!(
        "shard {}: closed {count} partitions holding {bytes} bytes; {fsyncs} group-commit fdatasyncs this run",
        shard.id.0
    );
    let io = rt::driver_stats();
    eprintln!(
        "shard {}: io_uring {} submissions in {} enters; bytes spliced file->socket {}, read file->memory {}, \
         sent memory->socket {}, received {}, written {}",
        shard.id.0,
        io.submissions,
        io.enter_calls,
        io.bytes_spliced,
        io.bytes_read,
        io.bytes_sent,
        io.bytes_received,
        io.bytes_written
    );
    Ok(())
}

/// Retention and time-based rolls, every `log.retention.check.interval.ms`.
async fn housekeeping(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.shared.config.log_retention_check_interval_ms);
    loop {
        rt::time::sleep(interval).await;
        for p in shard.partitions() {
            if let Err(e) = p.log.roll_if_due().await {
                eprintln!("{}-{}: roll failed: {e}", p.topic.name, p.index);
            }
            match p.log.apply_retention().await {
                Ok(o) if o.segments_deleted > 0 => eprintln!(
                    "{}-{}: retention deleted {} segments ({} bytes)",
                    p.topic.name, p.index, o.segments_deleted, o.bytes_deleted
                ),
                Ok(_) => {}
                Err(e) => eprintln!("{}-{}: retention failed: {e}", p.topic.name, p.index),
            }
            p.producer_housekeeping(ringtail_io::log::system_clock_ms());
        }
    }
}

/// Log compaction on this shard's partitions, checked every
/// `log.cleaner.backoff.ms` (Kafka's cleaner threads). Each pass reads and
/// writes on a thread of its own (see `ringtail_io::log::compact`); this
/// task only plans it and swaps the result in, so appends go on.
async fn cleaner(shard: Rc<Shard>) {
    let config = &shard.shared.config;
    if !config.log_cleaner_enable {
        return;
    }
    let backoff = Duration::from_millis(config.log_cleaner_backoff_ms);
    loop {
        rt::time::sleep(backoff).await;
        for p in shard.partitions() {
            match p.log.compact().await {
                Ok(Some(s)) => eprintln!(
                    "{}-{}: compacted {} segments of {} bytes into {} of {} bytes; removed {} of {} \
                     records ({} tombstones, {} without key) in {} ms on the cleaner thread, \
                     {} us of swap on the shard",
                    p.topic.name,
                    p.index,
                    s.segments_before,
                    s.bytes_before,
                    s.segments_after,
                    s.bytes_after,
                    s.records_removed,
                    s.records_read,
                    s.tombstones_removed,
                    s.keyless_removed,
                    s.duration_ms,
                    s.swap_busy_micros
                ),
                Ok(None) => {}
                Err(e) => eprintln!("{}-{}: compaction failed: {e}", p.topic.name, p.index),
            }
        }
    }
}

pub enum Either<L, R> {
    Left(L),
    Right(R),
}

/// Polls two futures, returning the first to finish.
pub async fn select<A: std::future::Future + Unpin, B: std::future::Future + Unpin>(
    mut a: A,
    mut b: B,
) -> Either<A::Output, B::Output> {
    use std::task::Poll;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = std::pin::Pin::new(&mut a).poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        if let Poll::Ready(out) = std::pin::Pin::new(&mut b).poll(cx) {
            return Poll::Ready(Either::Right(out));
        }
        Poll::Pending
    })
    .await
}

/// Parses the header and runs the API's handler.
pub async fn handle(frame: BytesMut, shard: Rc<Shard>, peer: SocketAddr) -> Response {
    let (header, body_offset) = {
        let body = ringtail_protocol::frame::body(&frame);
        match RequestHeader::parse(body) {
            Ok((header, rest)) => {
                let offset = frame.len() - rest.len();
                let header = Header {
                    api_key: header.api_key,
                    api_version: header.api_version,
                    correlation_id: header.correlation_id,
                    client_id: header.client_id.map(str::to_owned),
                    peer,
                };
                (header, offset)
            }
            Err(e) => return Response::Close(e.to_string()),
        }
    };
    let (api, started) = (header.api_key, std::time::Instant::now());
    let response = handlers::dispatch(header, frame, body_offset, shard).await;
    crate::metrics::shard::request_done(api, started.elapsed());
    response
}

/// The request header, owned (the frame moves on to the handler).
#[derive(Debug, Clone)]
pub struct Header {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: CorrelationId,
    pub client_id: Option<String>,
    /// The client's address (JoinGroup records its host, which
    /// DescribeGroups reports).
    pub peer: SocketAddr,
}
