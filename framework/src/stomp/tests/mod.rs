//! Codec tests: exact byte strings for each rule, the specification's examples, and properties.

mod decode;
mod encode;
mod props;

use bytes::BytesMut;

use super::{DecodeError, Decoder, Frame, Limits, Version};

/// Decodes every frame in `bytes`, which must end on a frame boundary.
fn decode_all(bytes: &[u8], version: Version) -> Result<Vec<Frame>, DecodeError> {
    decode_all_with(bytes, version, Limits::default())
}

fn decode_all_with(
    bytes: &[u8],
    version: Version,
    limits: Limits,
) -> Result<Vec<Frame>, DecodeError> {
    let mut decoder = Decoder::new(limits);
    decoder.set_version(version);
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf)? {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "bytes left over: {buf:?}");
    Ok(frames)
}

/// Decodes exactly one frame.
fn decode_one(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let mut frames = decode_all(bytes, Version::V1_2)?;
    assert_eq!(frames.len(), 1, "expected one frame, got {frames:?}");
    Ok(frames.remove(0))
}

fn headers_of(frame: &Frame) -> Vec<(&str, &str)> {
    frame.headers.iter().collect()
}
