//! Reading fetched batches on the client side: the records inside a
//! compressed batch.
//!
//! The protocol crate iterates the records of uncompressed batches only
//! (the broker never decompresses on the produce or fetch path). A
//! compressed batch is read here by decompressing its records section and
//! viewing the result as the uncompressed batch it stands for: same header,
//! codec bits cleared, `batchLength` fixed up. The CRC of that copy is not
//! recomputed; the original batch's CRC is checked before anything is
//! decompressed. The codecs themselves (gzip, snappy raw, xerial-framed or
//! framing-format, LZ4 frames, zstd; output bounded by
//! [`DECOMPRESSED_BYTES_MAX`]) are the storage layer's, shared with the log
//! cleaner: [`ringtail_io::log::codec`].

use std::borrow::Cow;

use ringtail_io::log::codec as codecs;
pub use ringtail_io::log::codec::DECOMPRESSED_BYTES_MAX;
use ringtail_protocol::batch::{Compression, RECORD_BATCH_OVERHEAD};
use ringtail_protocol::RecordBatch;
use thiserror::Error;

const BATCH_LENGTH_AT: usize = 8;
const ATTRIBUTES_AT: usize = 21;
const COMPRESSION_MASK: i16 = 0x07;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),
    #[error("{codec:?} batch decompresses to more than a batch can hold")]
    TooLarge { codec: Compression },
    #[error(transparent)]
    Codec(#[from] codecs::CodecError),
    #[error(
        "record batch at offset {base_offset} is corrupt: stored crc {stored:#010x}, computed {computed:#010x}"
    )]
    Crc {
        base_offset: i64,
        stored: u32,
        computed: u32,
    },
}

/// Decompresses a batch's records section.
pub fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    Ok(codecs::decompress(codec as u8, data)?)
}

/// Checks a fetched batch's CRC, as a Kafka consumer does with
/// `check.crcs=true` (the default).
pub fn check_crc(batch: &RecordBatch<'_>) -> Result<(), CodecError> {
    if batch.is_crc_valid() {
        Ok(())
    } else {
        Err(CodecError::Crc {
            base_offset: batch.base_offset().0,
            stored: batch.crc(),
            computed: batch.compute_crc(),
        })
    }
}

/// The batch as an uncompressed batch, whose `records()` can be iterated:
/// the batch itself when it is not compressed, else a decompressed copy.
pub fn plain_batch<'a>(batch: &RecordBatch<'a>) -> Result<Cow<'a, [u8]>, CodecError> {
    let codec = batch
        .compression()
        .ok_or_else(|| CodecError::UnknownCodec(batch.attributes().compression_id()))?;
    if codec == Compression::None {
        return Ok(Cow::Borrowed(batch.as_bytes()));
    }
    let records = decompress(codec, batch.records_bytes())?;
    let mut out = Vec::with_capacity(RECORD_BATCH_OVERHEAD + records.len());
    out.extend_from_slice(&batch.as_bytes()[..RECORD_BATCH_OVERHEAD]);
    out.extend_from_slice(&records);
    let batch_length = i32::try_from(out.len() - BATCH_LENGTH_AT - 4)
        .map_err(|_| CodecError::TooLarge { codec })?;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = batch.attributes().0 & !COMPRESSION_MASK;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xerial snappy-java's stream header magic.
    const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
    use ringtail_protocol::batch::BatchBuilder;
    use std::io::Write;

    fn sample_batch() -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for i in 0..50 {
            let value = format!("value number {i} with some repetition repetition");
            b.append(
                1_700_000_000_000 + i,
                Some(b"k"),
                Some(value.as_bytes()),
                &[],
            );
        }
        b.build()
    }

    /// Rewrites `plain` as a batch compressed with `codec`, CRC included,
    /// as a producer would send it.
    fn compressed(plain: &[u8], codec: Compression, records: Vec<u8>) -> Vec<u8> {
        let mut out = plain[..RECORD_BATCH_OVERHEAD].to_vec();
        out.extend_from_slice(&records);
        let len = (out.len() - 12) as i32;
        out[8..12].copy_from_slice(&len.to_be_bytes());
        let attributes = codec as i16;
        out[21..23].copy_from_slice(&attributes.to_be_bytes());
        ringtail_protocol::batch::patch::update_crc(&mut out);
        out
    }

    fn xerial(raw_blocks: &[&[u8]]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        for block in raw_blocks {
            let c = snap::raw::Encoder::new()
                .compress_vec(block)
                .expect("compress");
            out.extend_from_slice(&(c.len() as i32).to_be_bytes());
            out.extend_from_slice(&c);
        }
        out
    }

    fn encodings(records: &[u8]) -> Vec<(Compression, Vec<u8>)> {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(records).expect("gzip");
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(records).expect("lz4");
        let (first, second) = records.split_at(records.len() / 3);
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        framed.write_all(records).expect("snappy frame");
        vec![
            (Compression::Gzip, gzip.finish().expect("gzip")),
            (
                Compression::Snappy,
                snap::raw::Encoder::new()
                    .compress_vec(records)
                    .expect("raw"),
            ),
            (Compression::Snappy, xerial(&[first, second])),
            (
                Compression::Snappy,
                framed.into_inner().expect("snappy frame"),
            ),
            (Compression::Lz4, lz4.finish().expect("lz4")),
            (
                Compression::Zstd,
                zstd::encode_all(records, 3).expect("zstd"),
            ),
        ]
    }

    #[test]
    fn every_codec_reads_back_the_same_records() {
        let plain = sample_batch();
        let plain_view = RecordBatch::new(&plain).expect("valid");
        let expected: Vec<_> = plain_view
            .records()
            .expect("uncompressed")
            .map(|r| r.expect("valid").value.map(<[u8]>::to_vec))
            .collect();
        for (codec, data) in encodings(plain_view.records_bytes()) {
            let bytes = compressed(&plain, codec, data);
            let batch = RecordBatch::new(&bytes).expect("valid framing");
            check_crc(&batch).expect("crc");
            let back = plain_batch(&batch).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            let back = RecordBatch::new(&back).expect("valid");
            assert_eq!(back.compression(), Some(Compression::None));
            let values: Vec<_> = back
                .records()
                .expect("uncompressed")
                .map(|r| r.expect("valid").value.map(<[u8]>::to_vec))
                .collect();
            assert_eq!(values, expected, "{codec:?}");
        }
    }

    #[test]
    fn corrupt_data_is_an_error_not_a_panic() {
        let plain = sample_batch();
        let records = RecordBatch::new(&plain)
            .expect("valid")
            .records_bytes()
            .to_vec();
        for (codec, mut data) in encodings(&records) {
            for cut in [0, 1, data.len() / 2] {
                let _ = decompress(codec, &data[..cut]);
            }
            let last = data.len() - 1;
            data[last] ^= 0xff;
            let mid = data.len() / 2;
            data[mid] ^= 0x55;
            let _ = decompress(codec, &data);
        }
        assert!(decompress(Compression::Snappy, &XERIAL_MAGIC[..]).is_err());
        let mut negative = xerial(&[]);
        negative.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(decompress(Compression::Snappy, &negative).is_err());
    }

    #[test]
    fn crc_damage_is_reported() {
        let mut bytes = sample_batch();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let batch = RecordBatch::new(&bytes).expect("framing intact");
        assert!(matches!(check_crc(&batch), Err(CodecError::Crc { .. })));
    }
}
