//! Hot-path codec benchmarks for `ringtail-protocol`.
//!
//! - batch validation: CRC-32C and the header rules on 16 KiB and 1 MiB
//!   batches, with and without the record walk, against bare CRC-32C;
//! - Produce request decode (v9, flexible, 16 partitions);
//! - Fetch response header encode (v11 and v12, 100 partitions).
//!
//! Sizes are fixed and inputs are built deterministically, so runs compare.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringtail_protocol::batch::{
    validate_produce_records, BatchBuilder, ProduceValidation, RecordBatch,
};
use ringtail_protocol::fetch::{FetchPartitionResponse, FetchResponse, FetchableTopicResponse};
use ringtail_protocol::produce::ProduceRequest;
use ringtail_protocol::wire::WireWrite;
use ringtail_protocol::{CorrelationId, Offset, PartitionId};

/// A batch of about `size_bytes` with `value_bytes`-sized values, as a
/// producer with `batch.size = size_bytes` would send it.
fn batch(size_bytes: usize, value_bytes: usize) -> Vec<u8> {
    let value: Vec<u8> = (0..value_bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut builder = BatchBuilder::new();
    let mut i = 0u64;
    while builder.size_bytes() + value_bytes + 16 <= size_bytes {
        let key = i.to_be_bytes();
        builder.append(1_700_000_000_000 + i as i64, Some(&key), Some(&value), &[]);
        i += 1;
    }
    builder.build()
}

fn batch_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_validation");
    for (label, size) in [("16KiB", 16 * 1024), ("1MiB", 1024 * 1024)] {
        let bytes = batch(size, 1000);
        let config = ProduceValidation {
            max_message_bytes: 2 * 1024 * 1024,
            ..ProduceValidation::new(11)
        };
        let header_only = ProduceValidation {
            check_records: false,
            ..config
        };
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        let view = RecordBatch::new(&bytes).expect("valid batch");
        group.bench_function(BenchmarkId::new("crc32c_only", label), |b| {
            b.iter(|| black_box(view).compute_crc())
        });
        group.bench_with_input(
            BenchmarkId::new("validate_header", label),
            &bytes,
            |b, bytes| b.iter(|| validate_produce_records(black_box(bytes), &header_only).is_ok()),
        );
        group.bench_with_input(
            BenchmarkId::new("validate_with_records", label),
            &bytes,
            |b, bytes| b.iter(|| validate_produce_records(black_box(bytes), &config).is_ok()),
        );
    }
    group.finish();
}

/// A v9 Produce body: 2 topics x 8 partitions, each with a 16 KiB batch.
fn produce_body() -> Vec<u8> {
    let records = batch(16 * 1024, 100);
    let mut body = Vec::new();
    body.put_compact_nullable_string(None); // transactional_id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&30_000i32.to_be_bytes()); // timeout_ms
    body.put_compact_len(2);
    for topic in ["orders", "payments"] {
        body.put_compact_string(topic);
        body.put_compact_len(8);
        for partition in 0..8i32 {
            body.extend_from_slice(&partition.to_be_bytes());
            body.put_compact_bytes(&records);
            body.put_empty_tagged_fields(true);
        }
        body.put_empty_tagged_fields(true);
    }
    body.put_empty_tagged_fields(true);
    body
}

fn produce_decode(c: &mut Criterion) {
    let body = produce_body();
    let mut group = c.benchmark_group("produce_decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("v9_16_partitions", |b| {
        b.iter(|| {
            let request = ProduceRequest::decode(9, black_box(&body)).expect("valid request");
            request.partition_count()
        })
    });
    group.finish();
}

fn fetch_encode(c: &mut Criterion) {
    let names: Vec<String> = (0..10).map(|i| format!("topic-{i:02}")).collect();
    let response = FetchResponse {
        topics: names
            .iter()
            .map(|name| FetchableTopicResponse {
                topic: name,
                partitions: (0..10)
                    .map(|p| FetchPartitionResponse {
                        records_len: 64 * 1024,
                        ..FetchPartitionResponse::empty(PartitionId(p), Offset(1_000_000))
                    })
                    .collect(),
            })
            .collect(),
        ..FetchResponse::default()
    };
    let mut group = c.benchmark_group("fetch_response_encode");
    group.throughput(Throughput::Elements(1));
    for version in [11i16, 12] {
        group.bench_function(
            BenchmarkId::new("100_partitions", format!("v{version}")),
            |b| {
                let mut buf = BytesMut::with_capacity(16 * 1024);
                b.iter(|| {
                    buf.clear();
                    let plan = response.encode_frame(version, CorrelationId(7), &mut buf);
                    plan.parts.len()
                })
            },
        );
    }
    group.finish();
}

fn config() -> Criterion {
    // Short runs: the bench shares a small machine; criterion's confidence
    // intervals say when that is not enough.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = batch_validation, produce_decode, fetch_encode
}
criterion_main!(benches);
