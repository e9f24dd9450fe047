//! Micro-benchmarks of the log store's hot paths: index lookup, batch
//! header parsing with CRC-32C, and appends through the io_uring writer.
//! Whole-disk figures against fio live in `perf/storage.sh`.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringtail_io::log::batch::{self, BatchHeader};
use ringtail_io::log::index::OffsetIndex;
use ringtail_io::log::{Log, LogConfig};
use ringtail_io::rt;

fn index_lookup(c: &mut Criterion) {
    // A full 1 GiB segment at the default 4 KiB interval.
    let mut index = OffsetIndex::default();
    for i in 0..262_144u32 {
        index.push(i * 4 + 3, i * 4096 + 1);
    }
    let mut probe = 0u32;
    c.bench_function("offset_index_lookup_256k_entries", |b| {
        b.iter(|| {
            probe = probe.wrapping_mul(1_103_515_245).wrapping_add(12345) % 1_048_576;
            std::hint::black_box(index.lookup(probe))
        })
    });
}

fn header_and_crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_parse_and_crc32c");
    for records in [16usize, 1024] {
        let record = vec![0xa5u8; 1000];
        let refs: Vec<&[u8]> = (0..records).map(|_| record.as_slice()).collect();
        let bytes = batch::build(0, 0, &refs);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(bytes.len()),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let h = BatchHeader::parse(bytes).expect("header");
                    batch::verify_crc(bytes, &h).expect("crc");
                })
            },
        );
    }
    group.finish();
}

fn append(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ringtail-bench-append-{}", std::process::id()));
    let record = vec![0x5au8; 1000];
    let refs: Vec<&[u8]> = (0..16).map(|_| record.as_slice()).collect();
    let template = batch::build(0, 0, &refs);
    let mut group = c.benchmark_group("log_append_no_fsync");
    group.throughput(Throughput::Bytes(template.len() as u64 * 64));
    group.bench_function("64_batches_of_16KiB", |b| {
        b.iter_custom(|iters| {
            let _ = std::fs::remove_dir_all(&dir);
            rt::block_on(async {
                let log = Log::open(&dir, LogConfig::default()).await.expect("open");
                let start = Instant::now();
                for _ in 0..iters {
                    let pending: Vec<_> = (0..64)
                        .map(|_| log.append(BytesMut::from(&template[..]), 0))
                        .collect();
                    for p in pending {
                        p.await.expect("append");
                    }
                }
                let elapsed: Duration = start.elapsed();
                log.close().await.expect("close");
                elapsed
            })
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, index_lookup, header_and_crc, append);
criterion_main!(benches);
