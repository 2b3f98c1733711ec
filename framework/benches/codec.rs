//! Codec hot paths: decoding and encoding typical frames, and encode-once fan-out.
//!
//! `cargo bench -p stompede --bench codec`; figures and how to read them: docs/benchmarks.md.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use stompede::stomp::{Command, Decoder, Frame, Headers, Limits, PreparedMessage, Version, encode};

/// A SEND frame of exactly 100 bytes on the wire, as a browser client sends it.
fn send_100() -> Frame {
    let head =
        "SEND\ndestination:/app/chat.room.42\ncontent-type:text/plain\ncontent-length:XX\n\n";
    let body_len = 100 - (head.len() + 1);
    Frame::new(Command::Send)
        .header("destination", "/app/chat.room.42")
        .header("content-type", "text/plain")
        .body(Bytes::from(vec![b'x'; body_len]))
}

/// A MESSAGE frame with the six headers a broker delivery carries.
fn message_6_headers() -> Frame {
    Frame::new(Command::Message)
        .header("subscription", "sub-0")
        .header("message-id", "a1b2c3d4-17")
        .header("destination", "/topic/greetings")
        .header("content-type", "application/json")
        .header("timestamp", "1732460000000")
        .header("priority", "4")
        .body(&br#"{"content":"Hello, Ada!"}"#[..])
}

fn body_60k() -> Frame {
    Frame::new(Command::Send)
        .header("destination", "/queue/uploads")
        .header("content-type", "application/octet-stream")
        .body(Bytes::from(vec![0xA5u8; 60 * 1024]))
}

fn frames() -> [(&'static str, Frame); 3] {
    [
        ("send_100b", send_100()),
        ("message_6_headers", message_6_headers()),
        ("body_60k", body_60k()),
    ]
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let limits = Limits { max_frame_size: 1 << 20, max_body_size: 1 << 20, ..Limits::default() };
    // Decodes a batch of frames per iteration, so buffer set-up stays out of the measurement.
    let mut bench = |name: &str, stream: Vec<u8>, frames: usize| {
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || (Decoder::new(limits), BytesMut::from(&stream[..])),
                |(decoder, buf)| {
                    while let Some(frame) = decoder.decode(buf).expect("valid stream") {
                        black_box(frame);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    };
    for (name, frame) in frames() {
        let one = encode(&frame, Version::V1_2).to_bytes();
        if name == "send_100b" {
            assert_eq!(one.len(), 100, "the SEND frame must be 100 bytes on the wire");
        }
        let batch = if one.len() > 1024 { 16 } else { 1000 };
        bench(name, one.iter().copied().cycle().take(one.len() * batch).collect(), batch);
    }
    // The same SEND but each with its own `receipt`: no head is the last one's, so every
    // frame is read the long way (the decoder recognises a head it has just read).
    let distinct = (0..1000)
        .flat_map(|i| {
            let frame = send_100().header("receipt", format!("r-{i}"));
            encode(&frame, Version::V1_2).to_bytes()
        })
        .collect();
    bench("send_100b_distinct_heads", distinct, 1000);
    group.finish();
}

fn encode_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for (name, frame) in frames() {
        group.bench_function(name, |b| {
            b.iter(|| black_box(encode(black_box(&frame), Version::V1_2)))
        });
    }
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan_out");
    let subscribers: Vec<(String, String)> =
        (0..1000).map(|i| (format!("sub-{i}"), format!("msg-{i}"))).collect();
    let mut headers = Headers::new();
    headers.push("destination", "/topic/prices");
    headers.push("content-type", "application/json");
    let body = Bytes::from(vec![b'p'; 100]);
    group.throughput(Throughput::Elements(subscribers.len() as u64));
    group.bench_function("prepared_1000_subscribers", |b| {
        b.iter(|| {
            let message = PreparedMessage::new(headers.clone(), body.clone());
            for (sub, id) in &subscribers {
                black_box(
                    message.for_subscriber(
                        Version::V1_2,
                        &[("subscription", sub), ("message-id", id)],
                    ),
                );
            }
        })
    });
    group.bench_function("naive_1000_subscribers", |b| {
        b.iter(|| {
            for (sub, id) in &subscribers {
                let mut frame = Frame::new(Command::Message)
                    .header("subscription", sub.clone())
                    .header("message-id", id.clone());
                frame.headers.extend(headers.iter().map(|(n, v)| (n.to_owned(), v.to_owned())));
                frame.body = body.clone();
                black_box(encode(&frame, Version::V1_2).to_bytes());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, decode, encode_frames, fan_out);
criterion_main!(benches);
