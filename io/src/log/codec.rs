//! Kafka's record compression codecs, as the cleaner needs them: a batch
//! whose records are partly removed is decompressed, filtered and
//! recompressed with the codec it had (gzip, snappy, lz4, zstd).
//!
//! Decompression accepts what clients write (snappy raw, xerial-framed as
//! the Java client writes it, or the framing format); compression writes
//! what the Java client writes (xerial snappy, LZ4 frames with independent
//! 64 KiB blocks, which Kafka's own LZ4 reader requires).

use std::io::{Read, Write};

use thiserror::Error;

/// The most bytes one batch may decompress to: a bound, so a corrupt
/// batch cannot exhaust the cleaner's memory.
pub const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;
/// snappy-java's default block size.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const SNAPPY_FRAME_MAGIC: &[u8; 10] = b"\xff\x06\x00\x00sNaPpY";

/// The codec ids of a batch's attributes (bits 0-2).
pub const NONE: u8 = 0;
pub const GZIP: u8 = 1;
pub const SNAPPY: u8 = 2;
pub const LZ4: u8 = 3;
pub const ZSTD: u8 = 4;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown compression codec id {0}")]
    Unknown(u8),
    #[error("codec {codec} data is corrupt: {reason}")]
    Corrupt { codec: u8, reason: String },
    #[error("codec {codec} data decompresses to more than {DECOMPRESSED_BYTES_MAX} bytes")]
    TooLarge { codec: u8 },
    #[error("codec {codec} failed to compress: {reason}")]
    Compress { codec: u8, reason: String },
}

fn corrupt(codec: u8, e: impl std::fmt::Display) -> CodecError {
    CodecError::Corrupt {
        codec,
        reason: e.to_string(),
    }
}

fn read_bounded(codec: u8, reader: impl Read) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    reader
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(CodecError::TooLarge { codec });
    }
    Ok(out)
}

/// Decompresses a batch's records section.
pub fn decompress(codec: u8, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    match codec {
        NONE => Ok(data.to_vec()),
        GZIP => read_bounded(codec, flate2::read::MultiGzDecoder::new(data)),
        SNAPPY if data.starts_with(XERIAL_MAGIC) => snappy_xerial(data),
        SNAPPY if data.starts_with(SNAPPY_FRAME_MAGIC) => {
            read_bounded(codec, snap::read::FrameDecoder::new(data))
        }
        SNAPPY => raw_snappy(data, 0),
        LZ4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data)),
        ZSTD => {
            let decoder = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder)
        }
        other => Err(CodecError::Unknown(other)),
    }
}

fn raw_snappy(block: &[u8], produced: usize) -> Result<Vec<u8>, CodecError> {
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(SNAPPY, e))?;
    if produced + len > DECOMPRESSED_BYTES_MAX {
        return Err(CodecError::TooLarge { codec: SNAPPY });
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| corrupt(SNAPPY, e))
}

fn snappy_xerial(data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut rest = data
        .get(XERIAL_HEADER_BYTES..)
        .ok_or_else(|| corrupt(SNAPPY, "truncated xerial header"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(SNAPPY, "truncated xerial block length"))?;
        let len = usize::try_from(i32::from_be_bytes(*len))
            .map_err(|_| corrupt(SNAPPY, "negative xerial block length"))?;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt(SNAPPY, "truncated xerial block"))?;
        out.extend_from_slice(&raw_snappy(block, out.len())?);
        rest = &tail[len..];
    }
    Ok(out)
}

/// Compresses a records section with `codec`.
pub fn compress(codec: u8, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let failed = |e: std::io::Error| CodecError::Compress {
        codec,
        reason: e.to_string(),
    };
    match codec {
        NONE => Ok(data.to_vec()),
        GZIP => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(failed)?;
            enc.finish().map_err(failed)
        }
        SNAPPY => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + data.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // min compatible
            let mut encoder = snap::raw::Encoder::new();
            for block in data.chunks(XERIAL_BLOCK_BYTES) {
                let packed = encoder
                    .compress_vec(block)
                    .map_err(|e| failed(std::io::Error::other(e)))?;
                out.extend_from_slice(&(packed.len() as i32).to_be_bytes());
                out.extend_from_slice(&packed);
            }
            Ok(out)
        }
        LZ4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent);
            let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
            enc.write_all(data).map_err(failed)?;
            enc.finish()
                .map_err(|e| failed(std::io::Error::other(e.to_string())))
        }
        ZSTD => zstd::stream::encode_all(data, 3).map_err(failed),
        other => Err(CodecError::Unknown(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
            let packed = compress(codec, &data).expect("compress");
            assert_eq!(
                decompress(codec, &packed).expect("decompress"),
                data,
                "codec {codec}"
            );
        }
        assert_eq!(decompress(7, b"x"), Err(CodecError::Unknown(7)));
        assert!(matches!(
            decompress(GZIP, b"not gzip"),
            Err(CodecError::Corrupt { codec: GZIP, .. })
        ));
    }
}
