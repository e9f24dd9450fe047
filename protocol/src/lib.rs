//! Kafka wire protocol for Ringtail.
//!
//! # Layout
//!
//! - [`wire`]: primitive types (fixed-width ints, varints, strings, bytes,
//!   arrays, tagged fields, uuids) over `&[u8]` readers and `BufMut`
//!   writers; [`DecodeError`] for malformed input.
//! - [`frame`]: the 4-byte size prefix; [`frame::check`] says whether a
//!   buffer holds a whole frame without consuming it.
//! - [`api_key`]: [`ApiKey`] and each API's first flexible version, which
//!   decides the header versions.
//! - [`header`]: request header parsing, response header encoding.
//! - [`produce`]: hand-written Produce v0-11 request decoder (borrows the
//!   records, no copy) and response encoder.
//! - [`fetch`]: hand-written Fetch v4-12 request decoder and a response
//!   encoder that leaves holes for record bytes sent from files.
//! - [`messages`]: control-plane messages through the (vendored)
//!   `kafka-protocol` crate, the [`messages::SUPPORTED`] table that
//!   ApiVersions advertises, and ApiVersions' own rules.
//! - [`error_code`]: Kafka's numeric [`ErrorCode`]s.
//! - [`batch`]: RecordBatch v2: a borrowed view with accessors, splitting,
//!   Kafka's produce validation (CRC-32C, counts, offsets), in-place
//!   patching, record iteration and a builder.
//! - [`types`]: newtypes for offsets, epochs and ids.
//!
//! Everything here is sans-IO: it reads from and writes to memory, and the
//! broker's connection loop does the socket work.
//!
//! # A request's path through this crate
//!
//! 1. [`frame::check`] on the read buffer: `Ok(None)` reads more, an error
//!    closes the connection, `Ok(Some(n))` splits off one frame.
//! 2. [`RequestHeader::parse`] on the frame body gives the API, version,
//!    correlation id and the request body.
//! 3. ApiVersions: [`messages::api_versions_reply`] (handles a too-new
//!    version itself). Others: check [`messages::is_supported`], then
//!    decode with [`produce::ProduceRequest::decode`],
//!    [`fetch::FetchRequest::decode`] or [`messages::decode_request`].
//! 4. Produce: per partition, [`batch::validate_produce_records`], then
//!    [`batch::patch`] the base offset and leader epoch in the frame
//!    buffer before appending; [`BatchError::error_code`] answers a bad
//!    batch.
//! 5. Answer with [`produce::ProduceResponse::encode`] inside
//!    [`header::write_response_frame`], [`messages::encode_response_frame`],
//!    or for Fetch [`fetch::FetchResponse::encode_frame`], whose
//!    [`fetch::FetchPart`]s interleave buffer ranges with record bytes sent
//!    from segment files.
//!
//! Clients built on this crate (the admin CLI, console tools, the perf
//! load generator) use [`messages::encode_request_frame`],
//! [`messages::parse_response_header`] and [`messages::decode_response`],
//! build record batches with [`batch::BatchBuilder`] and read fetched ones
//! with [`batch::batches`] and [`RecordBatch::records`].

pub mod api_key;
pub mod batch;
pub mod error_code;
pub mod fetch;
pub mod frame;
pub mod header;
pub mod messages;
pub mod produce;
pub mod types;
pub mod wire;

#[cfg(test)]
mod testkit;

pub use api_key::ApiKey;
pub use batch::{BatchError, RecordBatch};
pub use error_code::ErrorCode;
pub use frame::FrameError;
pub use header::{HeaderError, RequestHeader};
pub use types::{
    CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence,
};
pub use wire::{DecodeError, Reader, WireWrite};
