//! Arbitrary bytes as a client's byte stream: frame splitting with a size
//! limit, then request-header parsing of each frame, must never panic.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use strom_protocol::frame::decode_frame;
use strom_protocol::header::RequestHeader;

/// Frame limit for the fuzzer: small, so oversized-length handling is exercised too.
const MAX_FRAME_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    // Each successful decode consumes bytes, so this loop ends.
    while let Ok(Some(frame)) = decode_frame(&mut buf, MAX_FRAME_BYTES) {
        let frame = frame.freeze();
        let _ = RequestHeader::parse(&frame);
        let _ = RequestHeader::split(&frame);
    }
});
