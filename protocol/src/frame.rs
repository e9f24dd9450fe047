//! Size-prefixed framing: every Kafka request and response is an i32 byte
//! count followed by that many bytes.
//!
//! [`check`] looks at buffered bytes without consuming them, in the manner
//! of mini-redis' `Frame::check`: `Ok(None)` means "read more", which is an
//! expected outcome, not an error.

use bytes::{BufMut, BytesMut};
use thiserror::Error;

/// Bytes taken by the size prefix.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// A size prefix that the broker must refuse; the connection is closed
/// afterwards because the stream can no longer be re-synchronised.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("invalid frame size {size}: negative")]
    NegativeSize { size: i32 },
    /// Kafka's `socket.request.max.bytes` check.
    #[error("invalid frame size {size}: larger than socket.request.max.bytes {max_bytes}")]
    TooLarge { size: usize, max_bytes: usize },
}

/// Checks whether `buf` starts with a complete frame.
///
/// Returns the total length of that frame including its 4-byte prefix, so
/// the caller can `split_to(n)`; `Ok(None)` if more bytes are needed. The
/// size is judged as soon as the prefix is readable, so an oversized frame
/// is refused before its body is buffered.
pub fn check(buf: &[u8], max_bytes: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.first_chunk::<SIZE_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let size = i32::from_be_bytes(*prefix);
    let size = usize::try_from(size).map_err(|_| FrameError::NegativeSize { size })?;
    if size > max_bytes {
        return Err(FrameError::TooLarge { size, max_bytes });
    }
    let total = SIZE_PREFIX_BYTES + size;
    Ok((buf.len() >= total).then_some(total))
}

/// The body of a frame whose total length `check` returned.
pub fn body(frame: &[u8]) -> &[u8] {
    &frame[SIZE_PREFIX_BYTES..]
}

/// Writes a placeholder size prefix and returns where it is, for
/// [`finish`] to fill in once the body is written.
pub fn begin(buf: &mut BytesMut) -> usize {
    let start = buf.len();
    buf.put_i32(0);
    start
}

/// Fills in the size prefix written by [`begin`] at `start`.
pub fn finish(buf: &mut BytesMut, start: usize) {
    finish_with_extra(buf, start, 0);
}

/// Like [`finish`], for a frame of which `extra_bytes` are sent from
/// elsewhere (record bytes spliced from a file after this buffer).
pub fn finish_with_extra(buf: &mut BytesMut, start: usize, extra_bytes: usize) {
    let size = buf.len() - start - SIZE_PREFIX_BYTES + extra_bytes;
    let size = i32::try_from(size).expect("frame larger than i32::MAX");
    buf[start..start + SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 100 * 1024 * 1024;

    #[test]
    fn incomplete_prefix_or_body_needs_more() {
        assert_eq!(check(&[], MAX), Ok(None));
        assert_eq!(check(&[0, 0, 0], MAX), Ok(None));
        assert_eq!(check(&[0, 0, 0, 3, 1, 2], MAX), Ok(None));
    }

    #[test]
    fn complete_frame_reports_total_length() {
        assert_eq!(check(&[0, 0, 0, 2, 9, 9, 7], MAX), Ok(Some(6)));
        assert_eq!(check(&[0, 0, 0, 0], MAX), Ok(Some(4)));
        assert_eq!(body(&[0, 0, 0, 2, 9, 8]), &[9, 8]);
    }

    #[test]
    fn negative_and_oversized_sizes_are_refused_early() {
        assert_eq!(
            check(&[0xff, 0xff, 0xff, 0xff], MAX),
            Err(FrameError::NegativeSize { size: -1 })
        );
        let err = check(&[0, 0, 1, 1], 256).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                size: 257,
                max_bytes: 256
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid frame size 257: larger than socket.request.max.bytes 256"
        );
        assert_eq!(check(&[0, 0, 1, 0], 256), Ok(None));
    }

    #[test]
    fn begin_finish_write_the_size() {
        let mut buf = BytesMut::new();
        buf.put_u8(0xaa);
        let start = begin(&mut buf);
        buf.put_slice(b"hello");
        finish(&mut buf, start);
        assert_eq!(&buf[1..], &[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(check(&buf[1..], MAX), Ok(Some(9)));
        finish_with_extra(&mut buf, start, 10);
        assert_eq!(&buf[1..5], &[0, 0, 0, 15]);
        assert_eq!(check(&buf[1..], MAX), Ok(None));
    }
}
