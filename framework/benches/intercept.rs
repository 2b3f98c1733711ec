//! What interceptors cost on a session's path, end to end over a real TCP connection: a client
//! sends 1,000 SENDs (the last with a receipt) to a topic one subscriber on the same connection
//! receives, against a server with no interceptor, with one inbound interceptor that passes
//! every frame on, and with one outbound interceptor that does.
//!
//! `cargo bench -p stompede --bench intercept`; figures: docs/benchmarks.md.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stompede::intercept::{Inbound, Outbound};
use stompede::{Server, ServerBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SENDS: usize = 1_000;

/// A connected client subscribed to `/topic/bench`, and the bytes of one batch of SENDs.
async fn client(builder: ServerBuilder) -> (stompede::RunningServer, TcpStream, Vec<u8>) {
    let builder = builder
        .tcp("127.0.0.1:0".parse().expect("address"))
        .bind("127.0.0.1:0".parse().expect("address"));
    let server = builder.build().expect("configuration").start().await.expect("listening");
    let mut stream = TcpStream::connect(server.tcp_addr().expect("tcp")).await.expect("connect");
    stream
        .write_all(b"CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0SUBSCRIBE\nid:0\ndestination:/topic/bench\nreceipt:s\n\n\0")
        .await
        .expect("write");
    read_until(&mut stream, b"receipt-id:s").await;
    let mut batch = Vec::new();
    for i in 0..SENDS {
        let receipt = if i + 1 == SENDS { "receipt:done\n" } else { "" };
        batch.extend_from_slice(
            format!("SEND\ndestination:/topic/bench\n{receipt}\n{:0100}\0", i).as_bytes(),
        );
    }
    (server, stream, batch)
}

async fn read_until(stream: &mut TcpStream, want: &[u8]) {
    let mut seen = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !seen.windows(want.len()).any(|w| w == want) {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed");
        // Keep only the tail: the marker may straddle two reads.
        seen.extend_from_slice(&chunk[..n]);
        if seen.len() > 4096 {
            seen.drain(..seen.len() - 64);
        }
    }
}

fn interceptors(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("intercept");
    group.throughput(Throughput::Elements(SENDS as u64));
    group.measurement_time(Duration::from_secs(5));
    type Chain = (&'static str, fn() -> ServerBuilder);
    let chains: [Chain; 3] = [
        ("none", Server::builder),
        ("one_inbound_pass", || {
            Server::builder().inbound_interceptor(|f, _| async move { Inbound::Pass(f) })
        }),
        ("one_outbound_pass", || {
            Server::builder().outbound_interceptor(|f, _| async move { Outbound::Pass(f) })
        }),
    ];
    for (name, builder) in chains {
        let (server, mut stream, batch) = runtime.block_on(client(builder()));
        group.bench_function(format!("1000_sends_and_messages/{name}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    stream.write_all(&batch).await.expect("write");
                    read_until(&mut stream, b"receipt-id:done").await;
                })
            })
        });
        drop(stream);
        runtime.block_on(server.shutdown(Duration::from_secs(1)));
    }
    group.finish();
}

criterion_group!(benches, interceptors);
criterion_main!(benches);
