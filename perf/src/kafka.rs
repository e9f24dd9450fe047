//! The Kafka client pieces the load generator needs beyond the admin
//! client: topic layout (Metadata, CreateTopics through
//! `ringtail::admin::client`), raw connections with framed reads, a
//! hand-written Produce request encoder (record batches are built straight
//! into the request buffer, no copy) and Produce response decoding.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use ringtail::admin::client::{self, Client, ClientError};
use ringtail_protocol::batch::BatchBuilder;
use ringtail_protocol::messages::kafka_protocol::messages::create_topics_request::CreatableTopic;
use ringtail_protocol::messages::kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, ProduceRequest, ProduceResponse, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;
use ringtail_protocol::messages::{self};
use ringtail_protocol::{frame, ApiKey, CorrelationId, ErrorCode};

/// The client id every request carries.
pub const CLIENT_ID: &str = "ringtail-perf";
/// Produce versions 3-8 share one request layout (non-flexible, with
/// transactional_id); 9+ are flexible and 13 names topics by id.
pub const PRODUCE_VERSION_MAX: i16 = 8;
pub const PRODUCE_VERSION_MIN: i16 = 3;
/// Fetch v13 names topics by id; requests here carry names.
pub const FETCH_VERSION_MAX: i16 = 12;
/// The largest response accepted (a Fetch answer is bounded by
/// fetch.max.bytes, at most this).
pub const RESPONSE_BYTES_MAX: usize = client::RESPONSE_BYTES_MAX;

/// One partition of the topic under test and the broker leading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLeader {
    pub partition: i32,
    pub leader: i32,
}

/// What the tools need to know about the topic before starting.
#[derive(Debug, Clone)]
pub struct Layout {
    pub partitions: Vec<PartitionLeader>,
    /// node id -> host:port
    pub brokers: HashMap<i32, String>,
    pub produce_version: i16,
    pub fetch_version: i16,
}

impl Layout {
    pub fn leader_addr(&self, leader: i32) -> Result<&str, String> {
        self.brokers
            .get(&leader)
            .map(String::as_str)
            .ok_or_else(|| format!("leader {leader} is not in the metadata"))
    }
}

/// Creates the topic if asked (an existing one is fine) and waits up to
/// `wait` until it exists with a leader for every partition.
pub fn layout(
    bootstrap: &str,
    topic: &str,
    create: Option<(i32, i16)>,
    wait: Duration,
) -> Result<Layout, String> {
    let mut c = Client::bootstrap(bootstrap, CLIENT_ID).map_err(|e| e.to_string())?;
    if let Some((partitions, replication_factor)) = create {
        create_topic(&mut c, topic, partitions, replication_factor)?;
    }
    let deadline = Instant::now() + wait;
    loop {
        let response = c
            .metadata(Some(&[topic]), false)
            .map_err(|e| e.to_string())?;
        let brokers: HashMap<i32, String> = client::brokers_of(&response)
            .into_iter()
            .map(|b| (b.node_id, b.addr()))
            .collect();
        if let Some((code, info)) = client::topics_of(&response).into_iter().next() {
            let ready = code == 0
                && !info.partitions.is_empty()
                && info.partitions.iter().all(|p| p.leader >= 0);
            if ready {
                let partitions = info
                    .partitions
                    .iter()
                    .map(|p| PartitionLeader {
                        partition: p.index,
                        leader: p.leader,
                    })
                    .collect();
                let produce_version = c
                    .version_at_most::<ProduceRequest>(PRODUCE_VERSION_MAX)
                    .map_err(|e| e.to_string())?;
                if produce_version < PRODUCE_VERSION_MIN {
                    return Err(format!(
                        "broker speaks Produce up to v{produce_version}; this tool needs v{PRODUCE_VERSION_MIN}+"
                    ));
                }
                let fetch_version = c
                    .version_at_most::<FetchRequest>(FETCH_VERSION_MAX)
                    .map_err(|e| e.to_string())?;
                return Ok(Layout {
                    partitions,
                    brokers,
                    produce_version,
                    fetch_version,
                });
            }
            if code != 0 && !client::is_retriable(code) {
                return Err(format!("topic {topic}: {}", client::error_name(code)));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "topic {topic} does not exist or has partitions without a leader (use --create-topic)"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_topic(
    c: &mut Client,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
) -> Result<(), String> {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)])
        .with_timeout_ms(30_000);
    let response = c.send(&request).map_err(|e| e.to_string())?;
    for t in &response.topics {
        if t.error_code == ErrorCode::TopicAlreadyExists.code() {
            eprintln!("topic {topic} exists; producing to it as it is");
            continue;
        }
        if let Some(e) = ClientError::from_code(t.error_code, t.error_message.as_ref()) {
            return Err(format!("creating topic {topic}: {e}"));
        }
    }
    Ok(())
}

/// Connects with Nagle off and `timeout` on reads (so a lost answer is
/// noticed) and writes.
pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let fail = |e: io::Error| format!("cannot connect to {addr}: {e}");
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for sa in addr.to_socket_addrs().map_err(fail)? {
        match TcpStream::connect_timeout(&sa, client::CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true).map_err(fail)?;
                s.set_read_timeout(Some(timeout)).map_err(fail)?;
                s.set_write_timeout(Some(timeout)).map_err(fail)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(fail(last))
}

/// Reads one response frame into `buf` (replacing what it held): the body
/// after the size prefix. `Ok(false)` on a clean end of stream before the
/// prefix.
pub fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<bool> {
    let mut prefix = [0u8; frame::SIZE_PREFIX_BYTES];
    match stream.read(&mut prefix)? {
        0 => return Ok(false),
        n if n < prefix.len() => stream.read_exact(&mut prefix[n..])?,
        _ => {}
    }
    frame::check(&prefix, RESPONSE_BYTES_MAX)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let size = i32::from_be_bytes(prefix) as usize;
    buf.clear();
    buf.reserve(size);
    read_into_spare(stream, buf, size)?;
    Ok(true)
}

/// Reads exactly `size` bytes into `buf`'s spare capacity with recv(2),
/// without zero-filling it first: a consumer's Fetch answers are tens of
/// MB each, and zeroing them cost a fifth of the consumer's CPU.
fn read_into_spare(stream: &TcpStream, buf: &mut BytesMut, size: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    while buf.len() < size {
        let len = buf.len();
        let spare = buf.spare_capacity_mut();
        let want = (size - len).min(spare.len());
        // SAFETY: recv writes at most `want` bytes into the spare capacity,
        // which `reserve` made at least `size - len` long; only the bytes
        // it reports written are then counted as initialised.
        let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), want, 0) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // SAFETY: the kernel initialised `n` bytes after the old length.
            n => unsafe { buf.set_len(buf.len() + n as usize) },
        }
    }
    Ok(())
}

/// Appends one Produce request frame (v3-v8 layout) for `topic` carrying
/// one batch per partition.
pub fn encode_produce(
    out: &mut Vec<u8>,
    version: i16,
    correlation_id: CorrelationId,
    acks: i16,
    timeout_ms: i32,
    topic: &str,
    batches: &[(i32, &BatchBuilder)],
) {
    assert!((PRODUCE_VERSION_MIN..=PRODUCE_VERSION_MAX).contains(&version));
    let start = out.len();
    out.put_i32(0); // size, patched below
    out.put_i16(ApiKey::Produce.key());
    out.put_i16(version);
    out.put_i32(correlation_id.0);
    put_string(out, CLIENT_ID);
    out.put_i16(-1); // transactional_id: null
    out.put_i16(acks);
    out.put_i32(timeout_ms);
    out.put_i32(1); // topics
    put_string(out, topic);
    out.put_i32(i32::try_from(batches.len()).expect("partition count fits i32"));
    for (partition, builder) in batches {
        out.put_i32(*partition);
        out.put_i32(i32::try_from(builder.size_bytes()).expect("batch under 2 GiB"));
        builder.encode_into(out);
    }
    let size = i32::try_from(out.len() - start - 4).expect("request under 2 GiB");
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.put_i16(i16::try_from(s.len()).expect("string under 32 KiB"));
    out.put_slice(s.as_bytes());
}

/// A Produce answer: its correlation id and each partition's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceAnswer {
    pub correlation_id: CorrelationId,
    pub partitions: Vec<(i32, i16)>,
}

pub fn decode_produce_response(version: i16, body: &[u8]) -> Result<ProduceAnswer, String> {
    let (correlation_id, rest) = messages::parse_response_header(ApiKey::Produce, version, body)
        .map_err(|e| format!("Produce response header: {e}"))?;
    let response: ProduceResponse =
        messages::decode_response(ApiKey::Produce, version, rest).map_err(|e| e.to_string())?;
    let partitions = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| (p.index, p.error_code))
        .collect();
    Ok(ProduceAnswer {
        correlation_id,
        partitions,
    })
}

/// Encodes a control-plane or Fetch request with the generated codecs.
pub fn encode_request<T: ringtail_protocol::messages::kafka_protocol::protocol::Request>(
    version: i16,
    correlation_id: CorrelationId,
    request: &T,
    buf: &mut BytesMut,
) -> Result<(), String> {
    messages::encode_request_frame(version, correlation_id, Some(CLIENT_ID), request, buf)
        .map_err(|e| e.to_string())
}

/// Writes all of `bytes`.
pub fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_protocol::produce::ProduceRequest as ServerProduceRequest;
    use ringtail_protocol::RequestHeader;

    /// The broker's own decoder is the oracle for the hand-written encoder.
    #[test]
    fn produce_requests_decode_on_the_broker_side() {
        let mut a = BatchBuilder::new();
        a.append(1, None, Some(b"hello"), &[]);
        let mut b = BatchBuilder::new();
        b.append(2, Some(b"k"), Some(b"world"), &[]);
        b.append(3, None, None, &[]);
        for version in PRODUCE_VERSION_MIN..=PRODUCE_VERSION_MAX {
            let mut out = Vec::new();
            encode_produce(
                &mut out,
                version,
                CorrelationId(42),
                -1,
                1500,
                "topic-x",
                &[(3, &a), (7, &b)],
            );
            let size = i32::from_be_bytes(out[..4].try_into().expect("4 bytes")) as usize;
            assert_eq!(size, out.len() - 4);
            let header = RequestHeader::parse(&out[4..]).expect("header parses");
            assert_eq!(header.0.api_key, ApiKey::Produce);
            assert_eq!(header.0.api_version, version);
            assert_eq!(header.0.correlation_id, CorrelationId(42));
            assert_eq!(header.0.client_id, Some(CLIENT_ID));
            let request = ServerProduceRequest::decode(version, header.1).expect("body decodes");
            assert_eq!(request.acks, -1);
            assert_eq!(request.timeout_ms, 1500);
            assert_eq!(request.topics.len(), 1);
            assert_eq!(request.topics[0].name, "topic-x");
            let parts = &request.topics[0].partitions;
            assert_eq!(parts.len(), 2);
            assert_eq!(parts[0].index.0, 3);
            assert_eq!(parts[0].records, Some(&a.build()[..]));
            assert_eq!(parts[1].index.0, 7);
            assert_eq!(parts[1].records, Some(&b.build()[..]));
        }
    }
}
