//! Bad input from the network against a real broker process, over plain
//! `std::net::TcpStream`s.
//!
//! Every test first stores reference data (three batches in `data-0`) and
//! fetches it back; then it sends one kind of bad request and checks the
//! exact answer Kafka gives (an error code, or a closed connection), that
//! other connections keep being served, that the reference data still
//! fetches byte for byte as before, and, after a SIGTERM, that
//! `ringtail log verify` finds the partition's log intact.

#[path = "clients/harness.rs"]
mod harness;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use harness::Broker;
use ringtail_protocol::batch::{BatchBuilder, Compression};
use ringtail_protocol::messages::kafka_protocol::messages::create_topics_request::CreatableTopic;
use ringtail_protocol::messages::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, FetchResponse, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::{
    Decodable, Encodable, Message, Request, StrBytes,
};
use ringtail_protocol::messages::{decode_response, encode_request_frame, parse_response_header};
use ringtail_protocol::{ApiKey, CorrelationId, ErrorCode};

const TOPIC: &str = "data";
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One raw connection that speaks just enough Kafka for these tests.
struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    fn open(broker: &Broker) -> Conn {
        let stream = TcpStream::connect_timeout(&broker.addr(), IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            correlation_id: 0,
        }
    }

    fn next_correlation_id(&mut self) -> i32 {
        self.correlation_id += 1;
        self.correlation_id
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one response frame body (after the size prefix).
    fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = usize::try_from(i32::from_be_bytes(size)).expect("non-negative frame size");
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body)?;
        Ok(body)
    }

    /// Encodes a request frame without sending it; returns its
    /// correlation id too.
    fn frame<Req: Request + Encodable>(&mut self, version: i16, request: &Req) -> (i32, BytesMut) {
        let correlation_id = self.next_correlation_id();
        let mut buf = BytesMut::new();
        encode_request_frame(
            version,
            CorrelationId(correlation_id),
            Some("malformed-test"),
            request,
            &mut buf,
        )
        .expect("encode request");
        (correlation_id, buf)
    }

    /// Reads the response to `correlation_id`, which must come next.
    fn response<Resp: Decodable + Message>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Resp {
        let frame = self
            .read_frame()
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: no response: {e}"));
        let (got, body) = parse_response_header(api_key, version, &frame).expect("header");
        assert_eq!(got.0, correlation_id, "{api_key:?}: correlation id");
        decode_response(api_key, version, body).expect("decode response")
    }

    /// Sends a request and decodes its response.
    fn call<Req: Request + Encodable, Resp: Decodable + Message>(
        &mut self,
        version: i16,
        request: &Req,
    ) -> Resp {
        let api_key = ApiKey::from_key(Req::KEY).expect("known key");
        let (correlation_id, buf) = self.frame(version, request);
        self.send(&buf);
        self.response(api_key, version, correlation_id)
    }

    /// Asserts that the broker closes this connection without answering.
    fn assert_closed(&mut self, what: &str) {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("{what}: the broker answered instead of closing the connection"),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: connection still open after {IO_TIMEOUT:?}")
            }
            Err(e) => panic!("{what}: unexpected read error {e}"),
        }
    }

    fn create_topic(&mut self, name: &str) {
        let created: CreateTopicsResponse = self.call(
            7,
            &CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name.to_string())))
                    .with_num_partitions(1)
                    .with_replication_factor(1)]),
        );
        assert_eq!(
            created.topics[0].error_code, 0,
            "create {name}: {created:?}"
        );
    }

    /// A produce to partition 0 of each topic in `batches`.
    fn produce_to(
        &mut self,
        version: i16,
        acks: i16,
        batches: Vec<(&str, Vec<u8>)>,
    ) -> ProduceResponse {
        self.call(version, &produce_request(acks, batches))
    }

    fn produce(&mut self, acks: i16, topic: &str, records: Vec<u8>) -> ProduceResponse {
        self.produce_to(PRODUCE_VERSION, acks, vec![(topic, records)])
    }

    /// The single partition error code of a one-partition produce.
    fn produce_error(&mut self, acks: i16, records: Vec<u8>) -> i16 {
        produce_result(&self.produce(acks, TOPIC, records)).0
    }

    /// Fetches `data-0` from offset 0: (high watermark, record bytes).
    fn fetch_all(&mut self) -> (i64, Vec<u8>) {
        let response: FetchResponse = self.call(FETCH_VERSION, &fetch_request());
        fetched(&response)
    }

    fn metadata(&mut self) -> MetadataResponse {
        self.call(12, &MetadataRequest::default().with_topics(None))
    }
}

/// A produce to partition 0 of each topic in `batches`.
fn produce_request(acks: i16, batches: Vec<(&str, Vec<u8>)>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(
            batches
                .into_iter()
                .map(|(topic, records)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(records)))])
                })
                .collect(),
        )
}

/// The single partition error code and base offset of a one-partition
/// produce response.
fn produce_result(response: &ProduceResponse) -> (i16, i64) {
    assert_eq!(response.responses.len(), 1, "{response:?}");
    let partitions = &response.responses[0].partition_responses;
    assert_eq!(partitions.len(), 1, "{response:?}");
    (partitions[0].error_code, partitions[0].base_offset)
}

/// A fetch of `data-0` from offset 0.
fn fetch_request() -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

/// (high watermark, record bytes) of a `fetch_request` response.
fn fetched(response: &FetchResponse) -> (i64, Vec<u8>) {
    assert_eq!(response.error_code, 0, "{response:?}");
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "fetch: {partition:?}");
    (
        partition.high_watermark,
        partition.records.clone().unwrap_or_default().to_vec(),
    )
}

/// A valid batch of `n` records, as a producer sends it.
fn batch(tag: &str, n: usize, value_bytes: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        let key = format!("{tag}-{i}");
        let value: Vec<u8> = (0..value_bytes).map(|j| (i * 7 + j) as u8).collect();
        b.append(
            1_700_000_000_000 + i as i64,
            Some(key.as_bytes()),
            Some(&value),
            &[],
        );
    }
    b.build()
}

/// A valid one-record batch of exactly `size_bytes`.
fn batch_of_size(size_bytes: usize) -> Vec<u8> {
    for value_bytes in (0..size_bytes).rev() {
        let mut b = BatchBuilder::new();
        b.append(1_700_000_000_000, None, Some(&vec![b'x'; value_bytes]), &[]);
        if b.size_bytes() == size_bytes {
            return b.build();
        }
    }
    panic!("no one-record batch has {size_bytes} bytes");
}

/// The broker under test plus the reference data stored in it.
struct Fixture {
    broker: Broker,
    /// Record bytes of `data-0` as first fetched.
    reference: Vec<u8>,
    high_watermark: i64,
}

impl Fixture {
    fn start(name: &str, overrides: &[&str]) -> Fixture {
        let broker = Broker::start(name, overrides);
        let mut conn = Conn::open(&broker);
        conn.create_topic(TOPIC);
        let mut offset = 0;
        for (i, n) in [1usize, 5, 20].into_iter().enumerate() {
            let response = conn.produce(-1, TOPIC, batch(&format!("ref{i}"), n, 10));
            let p = &response.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "reference produce: {response:?}");
            assert_eq!(p.base_offset, offset, "reference produce: {response:?}");
            offset += n as i64;
        }
        let (high_watermark, reference) = conn.fetch_all();
        assert_eq!(high_watermark, offset);
        Fixture {
            broker,
            reference,
            high_watermark,
        }
    }

    /// The reference data fetches back unchanged over `conn`.
    fn assert_intact(&self, conn: &mut Conn, after: &str) {
        let (high_watermark, records) = conn.fetch_all();
        assert_eq!(
            high_watermark, self.high_watermark,
            "after {after}: high watermark moved"
        );
        assert!(
            records == self.reference,
            "after {after}: data-0 fetches {} bytes that differ from the {} stored before",
            records.len(),
            self.reference.len()
        );
    }

    /// A new connection is served and the data is intact; then the broker
    /// stops cleanly and `ringtail log verify` passes.
    fn finish(mut self, after: &str) {
        assert!(
            self.broker.is_running(),
            "broker died after {after}\n{}",
            self.broker.log()
        );
        let mut fresh = Conn::open(&self.broker);
        self.assert_intact(&mut fresh, after);
        drop(fresh);
        self.broker.stop();
        self.broker.verify_partition(TOPIC, 0);
    }
}

/// A raw request frame: header (v1, or v2 for `flexible`) and `body`.
fn raw_frame(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    flexible: bool,
    body: &[u8],
) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.put_i16(api_key);
    msg.put_i16(version);
    msg.put_i32(correlation_id);
    msg.put_i16(4);
    msg.put_slice(b"test");
    if flexible {
        msg.put_u8(0); // no tagged fields
    }
    msg.put_slice(body);
    let mut frame = Vec::new();
    frame.put_i32(i32::try_from(msg.len()).expect("small"));
    frame.put_slice(&msg);
    frame
}

#[test]
fn bad_crc_is_corrupt_message_and_the_connection_stays_usable() {
    let fixture = Fixture::start("bad-crc", &[]);
    let mut conn = Conn::open(&fixture.broker);
    let mut bad = batch("crc", 3, 10);
    let last = bad.len() - 1;
    bad[last] ^= 0xff; // a record byte, covered by the CRC
    assert_eq!(
        conn.produce_error(1, bad),
        ErrorCode::CorruptMessage.code(),
        "CRC mismatch"
    );
    // The same connection answers the next request.
    fixture.assert_intact(&mut conn, "a batch with a bad CRC");
    fixture.finish("a batch with a bad CRC");
}

#[test]
fn magic_1_message_set_is_invalid_record() {
    let fixture = Fixture::start("magic1", &[]);
    let mut conn = Conn::open(&fixture.broker);
    // A v1 message set with one message: offset, size, then crc, magic 1,
    // attributes, timestamp, key (null), value.
    let mut message = Vec::new();
    message.put_i8(1); // magic
    message.put_i8(0); // attributes
    message.put_i64(1_700_000_000_000);
    message.put_i32(-1);
    message.put_i32(5);
    message.put_slice(b"hello");
    let crc = crc32_ieee(&message);
    let mut set = Vec::new();
    set.put_i64(0);
    set.put_i32(i32::try_from(4 + message.len()).expect("small"));
    set.put_u32(crc);
    set.put_slice(&message);
    assert_eq!(
        conn.produce_error(1, set),
        ErrorCode::InvalidRecord.code(),
        "magic 1 on produce v{PRODUCE_VERSION}"
    );
    fixture.assert_intact(&mut conn, "a magic 1 message set");
    fixture.finish("a magic 1 message set");
}

#[test]
fn acks_5_is_invalid_required_acks() {
    let fixture = Fixture::start("acks5", &[]);
    let mut conn = Conn::open(&fixture.broker);
    assert_eq!(
        conn.produce_error(5, batch("acks", 2, 10)),
        ErrorCode::InvalidRequiredAcks.code(),
        "acks=5"
    );
    fixture.assert_intact(&mut conn, "acks=5");
    fixture.finish("acks=5");
}

#[test]
fn batch_over_message_max_bytes_is_message_too_large() {
    let fixture = Fixture::start("too-large", &["message.max.bytes=4096"]);
    let mut conn = Conn::open(&fixture.broker);
    // Exactly the limit is allowed, as in Kafka (`size > max` is refused).
    conn.create_topic("side");
    let response = conn.produce(1, "side", batch_of_size(4096));
    assert_eq!(
        produce_result(&response),
        (0, 0),
        "a batch of exactly message.max.bytes"
    );
    let response = conn.produce(1, "side", batch_of_size(4097));
    assert_eq!(
        produce_result(&response).0,
        ErrorCode::MessageTooLarge.code(),
        "a batch one byte over message.max.bytes"
    );
    let big = batch("big", 10, 500);
    assert!(big.len() > 4096);
    assert_eq!(
        conn.produce_error(1, big),
        ErrorCode::MessageTooLarge.code(),
        "batch over message.max.bytes"
    );
    fixture.assert_intact(&mut conn, "a batch over message.max.bytes");
    fixture.finish("a batch over message.max.bytes");
}

#[test]
fn truncated_frame_then_close_leaves_others_served() {
    let fixture = Fixture::start("truncated", &[]);
    let mut other = Conn::open(&fixture.broker);
    other.metadata();
    let mut conn = Conn::open(&fixture.broker);
    // The size prefix promises 1000 bytes; 20 arrive, then the client goes.
    let frame = raw_frame(0, PRODUCE_VERSION, 1, true, &[0u8; 1000]);
    conn.send(&frame[..24]);
    conn.stream.shutdown(Shutdown::Both).expect("shutdown");
    drop(conn);
    fixture.assert_intact(&mut other, "a truncated frame");
    fixture.finish("a truncated frame");
}

#[test]
fn frame_over_socket_request_max_bytes_closes_only_that_connection() {
    let fixture = Fixture::start("oversized", &["socket.request.max.bytes=2048"]);
    let mut other = Conn::open(&fixture.broker);
    let mut conn = Conn::open(&fixture.broker);
    // A frame of exactly the limit is served (Kafka refuses `size > max`).
    conn.create_topic("side");
    let mut exact = None;
    for batch_bytes in (100..2048).rev() {
        let (correlation_id, frame) = conn.frame(
            PRODUCE_VERSION,
            &produce_request(1, vec![("side", batch_of_size(batch_bytes))]),
        );
        if frame.len() == 4 + 2048 {
            exact = Some((correlation_id, frame));
            break;
        }
    }
    let (correlation_id, frame) = exact.expect("a produce frame of exactly 2048 bytes");
    conn.send(&frame);
    let response: ProduceResponse = conn.response(ApiKey::Produce, PRODUCE_VERSION, correlation_id);
    assert_eq!(
        produce_result(&response),
        (0, 0),
        "a frame of exactly socket.request.max.bytes"
    );
    // Only the size prefix and a little: the broker judges the prefix.
    let mut frame = Vec::new();
    frame.put_i32(2049);
    frame.put_slice(&[0u8; 64]);
    conn.send(&frame);
    conn.assert_closed("a frame over socket.request.max.bytes");
    fixture.assert_intact(&mut other, "a frame over socket.request.max.bytes");
    fixture.finish("a frame over socket.request.max.bytes");
}

#[test]
fn pipelined_requests_are_answered_in_order_around_a_bad_batch() {
    let fixture = Fixture::start("pipelined", &[]);
    let mut conn = Conn::open(&fixture.broker);
    conn.create_topic("side");
    let mut bad = batch("crc", 3, 10);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    // Five requests in one write, the second one bad.
    let requests = [
        conn.frame(
            PRODUCE_VERSION,
            &produce_request(-1, vec![("side", batch("a", 2, 10))]),
        ),
        conn.frame(PRODUCE_VERSION, &produce_request(-1, vec![(TOPIC, bad)])),
        conn.frame(
            PRODUCE_VERSION,
            &produce_request(1, vec![("side", batch("b", 3, 10))]),
        ),
        conn.frame(FETCH_VERSION, &fetch_request()),
        conn.frame(
            PRODUCE_VERSION,
            &produce_request(1, vec![("side", batch("c", 1, 10))]),
        ),
    ];
    let ids: Vec<i32> = requests.iter().map(|(id, _)| *id).collect();
    let bytes: Vec<u8> = requests.iter().flat_map(|(_, f)| f.to_vec()).collect();
    conn.send(&bytes);
    let produced = |conn: &mut Conn, id| {
        let r: ProduceResponse = conn.response(ApiKey::Produce, PRODUCE_VERSION, id);
        produce_result(&r)
    };
    assert_eq!(produced(&mut conn, ids[0]), (0, 0));
    assert_eq!(
        produced(&mut conn, ids[1]),
        (ErrorCode::CorruptMessage.code(), -1)
    );
    assert_eq!(produced(&mut conn, ids[2]), (0, 2));
    let response: FetchResponse = conn.response(ApiKey::Fetch, FETCH_VERSION, ids[3]);
    assert!(
        fetched(&response) == (fixture.high_watermark, fixture.reference.clone()),
        "pipelined fetch differs from the reference data"
    );
    assert_eq!(produced(&mut conn, ids[4]), (0, 5));
    fixture.assert_intact(&mut conn, "pipelined requests with a bad batch");
    fixture.finish("pipelined requests with a bad batch");
}

#[test]
fn acks_0_produce_gets_no_answer_and_the_next_request_is_answered() {
    let fixture = Fixture::start("acks0", &[]);
    let mut conn = Conn::open(&fixture.broker);
    conn.create_topic("side");
    let (_, produce) = conn.frame(
        PRODUCE_VERSION,
        &produce_request(0, vec![("side", batch("zero", 3, 10))]),
    );
    let (id, fetch) = conn.frame(FETCH_VERSION, &fetch_request());
    conn.send(&[produce.to_vec(), fetch.to_vec()].concat());
    // The first frame back answers the fetch: acks=0 has no response.
    let response: FetchResponse = conn.response(ApiKey::Fetch, FETCH_VERSION, id);
    assert!(fetched(&response) == (fixture.high_watermark, fixture.reference.clone()));
    let side: ListOffsetsResponse = conn.call(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("side")))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]),
    );
    assert_eq!(side.topics[0].partitions[0].offset, 3, "{side:?}");
    fixture.finish("an acks=0 produce");
}

/// Kafka answers nothing to an acks=0 produce, so when a partition fails
/// it closes the connection: the only way to tell the producer
/// (`KafkaApis.handleProduceRequest`, "Closing connection due to error
/// during produce request").
#[test]
fn acks_0_produce_with_a_bad_batch_closes_the_connection() {
    let fixture = Fixture::start("acks0-bad", &[]);
    let mut other = Conn::open(&fixture.broker);
    let mut conn = Conn::open(&fixture.broker);
    let mut bad = batch("crc", 3, 10);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let (_, frame) = conn.frame(PRODUCE_VERSION, &produce_request(0, vec![(TOPIC, bad)]));
    conn.send(&frame);
    conn.assert_closed("an acks=0 produce with a bad CRC");
    fixture.assert_intact(&mut other, "an acks=0 produce with a bad CRC");
    fixture.finish("an acks=0 produce with a bad CRC");
}

/// An idempotent producer (kafka-python 3 and the Java client enable it by
/// default) retries a batch whose answer it missed with the same producer
/// id, epoch and sequence. Kafka keeps the last five batches' sequences
/// per producer: a retry is answered with the first append's offset and
/// not stored again; a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER (45).
#[test]
fn idempotent_retry_is_not_appended_twice() {
    let fixture = Fixture::start("idempotent", &[]);
    let mut conn = Conn::open(&fixture.broker);
    conn.create_topic("side");
    let init: InitProducerIdResponse = conn.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0, "{init:?}");
    let (id, epoch) = (
        ringtail_protocol::ProducerId(init.producer_id.0),
        ringtail_protocol::ProducerEpoch(init.producer_epoch),
    );
    let idempotent = |sequence: i32, n: usize| {
        let mut b = BatchBuilder::new().producer(id, epoch, ringtail_protocol::Sequence(sequence));
        for i in 0..n {
            let value = format!("seq {sequence} #{i}");
            b.append(1_700_000_000_000, None, Some(value.as_bytes()), &[]);
        }
        b.build()
    };
    let first = idempotent(0, 3);
    let response = conn.produce(-1, "side", first.clone());
    assert_eq!(produce_result(&response), (0, 0), "first append");
    let response = conn.produce(-1, "side", first);
    assert_eq!(
        produce_result(&response),
        (0, 0),
        "a retry of the same batch: Kafka answers the first append's offset"
    );
    let response = conn.produce(-1, "side", idempotent(3, 2));
    assert_eq!(
        produce_result(&response),
        (0, 3),
        "the next batch in sequence"
    );
    let response = conn.produce(-1, "side", idempotent(10, 1));
    assert_eq!(
        produce_result(&response).0,
        ErrorCode::OutOfOrderSequenceNumber.code(),
        "a sequence gap"
    );
    let side: ListOffsetsResponse = conn.call(
        7,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("side")))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]),
    );
    assert_eq!(
        side.topics[0].partitions[0].offset, 5,
        "records stored in side-0"
    );
    fixture.assert_intact(&mut conn, "idempotent retries");
    fixture.finish("idempotent retries");
}

#[test]
fn requests_before_a_fatal_frame_are_answered_before_the_close() {
    let fixture = Fixture::start("answer-then-close", &["socket.request.max.bytes=2048"]);
    let mut oversized = Vec::new();
    oversized.put_i32(4096);
    oversized.put_slice(&[0u8; 16]);
    let fatal = [
        ("an unknown api key", raw_frame(1000, 0, 99, false, &[])),
        ("Produce v99", raw_frame(0, 99, 99, true, &[])),
        ("an oversized frame", oversized),
        ("a negative frame size", (-1i32).to_be_bytes().to_vec()),
    ];
    for (what, bad) in fatal {
        let mut conn = Conn::open(&fixture.broker);
        let (id, mut bytes) = conn.frame(FETCH_VERSION, &fetch_request());
        bytes.extend_from_slice(&bad);
        conn.send(&bytes);
        let response: FetchResponse = conn.response(ApiKey::Fetch, FETCH_VERSION, id);
        assert!(
            fetched(&response) == (fixture.high_watermark, fixture.reference.clone()),
            "{what}: the fetch before it was not answered with the reference data"
        );
        conn.assert_closed(what);
    }
    fixture.finish("fatal frames after a fetch");
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let fixture = Fixture::start("unknown-key", &[]);
    let mut other = Conn::open(&fixture.broker);
    let mut conn = Conn::open(&fixture.broker);
    conn.send(&raw_frame(1000, 0, 7, false, &[]));
    conn.assert_closed("api key 1000");
    fixture.assert_intact(&mut other, "an unknown api key");
    fixture.finish("an unknown api key");
}

#[test]
fn unsupported_produce_version_closes_the_connection() {
    let fixture = Fixture::start("produce-v99", &[]);
    let mut other = Conn::open(&fixture.broker);
    let supported = ringtail_protocol::messages::supported_range(ApiKey::Produce).expect("produce");
    for version in [supported.max + 1, 99, -1] {
        let mut conn = Conn::open(&fixture.broker);
        // A body that would be a valid produce of the newest supported
        // version, so only the version is wrong.
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch("v", 1, 10))))])]);
        let mut body = BytesMut::new();
        request.encode(&mut body, supported.max).expect("encode");
        conn.send(&raw_frame(0, version, 3, true, &body));
        conn.assert_closed(&format!("Produce v{version}"));
    }
    fixture.assert_intact(&mut other, "unsupported Produce versions");
    fixture.finish("unsupported Produce versions");
}

#[test]
fn api_versions_v99_gets_a_v0_unsupported_version_answer() {
    let fixture = Fixture::start("apiversions-v99", &[]);
    let mut conn = Conn::open(&fixture.broker);
    // A v3+ body (compact client software name and version, tagged fields).
    let mut body = Vec::new();
    body.put_u8(5);
    body.put_slice(b"test");
    body.put_u8(4);
    body.put_slice(b"1.0");
    body.put_u8(0);
    conn.send(&raw_frame(18, 99, 42, true, &body));
    let frame = conn.read_frame().expect("ApiVersions v99 answer");
    let own = ringtail_protocol::messages::supported_range(ApiKey::ApiVersions).expect("own range");
    // v0 response, v0 header: correlation id, error code, one api_keys
    // entry (ApiVersions' own range), nothing else.
    let mut want = Vec::new();
    want.put_i32(42);
    want.put_i16(ErrorCode::UnsupportedVersion.code());
    want.put_i32(1);
    want.put_i16(18);
    want.put_i16(own.min);
    want.put_i16(own.max);
    assert_eq!(frame, want, "ApiVersions v99 answer bytes");
    let decoded: ApiVersionsResponse =
        decode_response(ApiKey::ApiVersions, 0, &frame[4..]).expect("decodes as v0");
    assert_eq!(decoded.error_code, 35);
    // The client retries with a version both know, on the same connection.
    let retry: ApiVersionsResponse = conn.call(
        own.max,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("malformed-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0")),
    );
    assert_eq!(retry.error_code, 0, "{retry:?}");
    assert!(retry.api_keys.iter().any(|k| k.api_key == 0), "{retry:?}");
    fixture.assert_intact(&mut conn, "ApiVersions v99");
    fixture.finish("ApiVersions v99");
}

#[test]
fn one_bad_partition_leaves_the_others_of_the_request_appended() {
    let fixture = Fixture::start("partial", &[]);
    let mut conn = Conn::open(&fixture.broker);
    conn.create_topic("side");
    let mut bad = batch("crc", 3, 10);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let response = conn.produce_to(
        PRODUCE_VERSION,
        -1,
        vec![(TOPIC, bad), ("side", batch("side", 4, 10))],
    );
    let codes: Vec<(String, i16, i64)> = response
        .responses
        .iter()
        .map(|t| {
            let p = &t.partition_responses[0];
            (t.name.0.to_string(), p.error_code, p.base_offset)
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (TOPIC.to_string(), ErrorCode::CorruptMessage.code(), -1),
            ("side".to_string(), 0, 0),
        ],
        "{response:?}"
    );
    fixture.assert_intact(&mut conn, "a produce with one bad partition");
    fixture.finish("a produce with one bad partition");
}

#[test]
fn zstd_before_produce_v7_is_unsupported_compression_type() {
    let fixture = Fixture::start("zstd-v6", &[]);
    let mut conn = Conn::open(&fixture.broker);
    // Only the attributes matter: Kafka refuses zstd on v0-v6 before it
    // looks at the records.
    let mut zstd = batch("zstd", 2, 10);
    zstd[22] |= Compression::Zstd as u8; // low byte of attributes
    ringtail_protocol::batch::patch::update_crc(&mut zstd);
    let response = conn.produce_to(6, 1, vec![(TOPIC, zstd)]);
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        ErrorCode::UnsupportedCompressionType.code(),
        "{response:?}"
    );
    fixture.assert_intact(&mut conn, "zstd on produce v6");
    fixture.finish("zstd on produce v6");
}

#[test]
fn negative_frame_size_closes_the_connection() {
    let fixture = Fixture::start("negative-size", &[]);
    let mut other = Conn::open(&fixture.broker);
    let mut conn = Conn::open(&fixture.broker);
    conn.send(&(-5i32).to_be_bytes());
    conn.assert_closed("a negative frame size");
    fixture.assert_intact(&mut other, "a negative frame size");
    fixture.finish("a negative frame size");
}

#[test]
fn garbage_produce_body_closes_the_connection() {
    let fixture = Fixture::start("garbage-body", &[]);
    let mut other = Conn::open(&fixture.broker);
    let mut conn = Conn::open(&fixture.broker);
    // acks and timeout, then a topic array claiming 1000 topics that is
    // not there: the request cannot be parsed, so there is no answer.
    let mut body = Vec::new();
    body.put_u8(0); // null transactional id (compact)
    body.put_i16(1);
    body.put_i32(5000);
    body.put_u8(0xe9); // compact array length varint, continued...
    body.put_u8(0x07); // ...1000 + 1
    body.put_slice(&[0xff; 7]);
    conn.send(&raw_frame(0, PRODUCE_VERSION, 9, true, &body));
    conn.assert_closed("a Produce body that does not parse");
    fixture.assert_intact(&mut other, "a Produce body that does not parse");
    fixture.finish("a Produce body that does not parse");
}

/// CRC-32 (IEEE), which the old message format uses.
fn crc32_ieee(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
