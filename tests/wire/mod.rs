//! A Kafka request/response connection over a plain TCP socket for tests
//! that speak the protocol themselves (tests/admin_apis.rs,
//! tests/cluster.rs): the request is encoded with the protocol crate's
//! `kafka-protocol` messages, the answer read whole and decoded.

#![allow(dead_code)] // Each test uses part of it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringtail_protocol::batch::BatchBuilder;
use ringtail_protocol::messages::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    ProducerId as ProducerIdField, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::{Request, StrBytes};
use ringtail_protocol::messages::{decode_response, encode_request_frame, parse_response_header};
use ringtail_protocol::types::{ProducerEpoch, ProducerId, Sequence};
use ringtail_protocol::{ApiKey, CorrelationId};

pub struct Conn {
    stream: TcpStream,
    correlation: i32,
    client_id: &'static str,
}

impl Conn {
    pub fn new(stream: TcpStream, client_id: &'static str) -> Conn {
        Conn {
            stream,
            correlation: 0,
            client_id,
        }
    }

    /// Connects with a 30 s read timeout.
    pub fn connect(addr: &str, client_id: &'static str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        Conn::new(stream, client_id)
    }

    /// Sends `request` in `version` and returns the decoded answer.
    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        self.correlation += 1;
        let api_key = ApiKey::from_key(R::KEY).expect("known api key");
        let mut buf = BytesMut::new();
        encode_request_frame(
            version,
            CorrelationId(self.correlation),
            Some(self.client_id),
            request,
            &mut buf,
        )
        .unwrap_or_else(|e| panic!("encode {api_key:?} v{version}: {e}"));
        self.stream.write_all(&buf).expect("send");
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: no response ({e})"));
        let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).expect("response body");
        let (correlation, rest) =
            parse_response_header(api_key, version, &body).expect("response header");
        assert_eq!(correlation, CorrelationId(self.correlation));
        decode_response(api_key, version, rest)
            .unwrap_or_else(|e| panic!("decode {api_key:?} v{version}: {e}"))
    }

    /// A new idempotent producer id and epoch (InitProducerId v4).
    pub fn init_producer_id(&mut self) -> (i64, i16) {
        let response: InitProducerIdResponse = self.call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerIdField(-1))
                .with_producer_epoch(-1),
        );
        assert_eq!(response.error_code, 0, "{response:?}");
        (response.producer_id.0, response.producer_epoch)
    }

    /// Produces one batch of `values` (Produce v9) with `acks`, idempotent
    /// when `producer` is (id, epoch, base sequence); the partition's error
    /// code and base offset.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        producer: Option<(i64, i16, i32)>,
        values: &[&[u8]],
    ) -> (i16, i64) {
        let mut batch = BatchBuilder::new();
        if let Some((id, epoch, seq)) = producer {
            batch = batch.producer(ProducerId(id), ProducerEpoch(epoch), Sequence(seq));
        }
        for v in values {
            batch.append(1_700_000_000_000, None, Some(v), &[]);
        }
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(batch.build())))])]);
        let response: ProduceResponse = self.call(9, &request);
        let p = &response.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }
}
