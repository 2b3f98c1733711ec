//! The stompede load generator: STOMP 1.2 over WebSocket against any server (ours, RabbitMQ
//! Web-STOMP, anything), built on `stompede::client`.
//!
//! ```text
//! cargo run --release --example loadgen -- fanout --url ws://127.0.0.1:61614/ws \
//!     --subscribers 100 --publishers 1 --messages 20000 --size 100 [--rate 10000] \
//!     [--receipt-every 100] [--server-pid PID] [--label ours]
//! cargo run --release --example loadgen -- partitioned --topics 50 --messages 2000 ...
//! cargo run --release --example loadgen -- connections --connections 5000 --server-pid PID ...
//! cargo run --release --example loadgen -- queue --publishers 2 --consumers 4 --prefetch 100 ...
//! ```
//!
//! Each run prints a human summary and one JSON line (prefixed `RESULT `) for scripts.
//! Messages carry the publisher, a sequence number and the send time, so every subscriber
//! checks that it got each message exactly once and in order per publisher; lost, duplicated
//! and out-of-order counts are reported and must be zero. In-flight messages are bounded (a
//! RECEIPT every K messages per publisher) so the broker is measured, not flooded.

mod options;
mod proc_stat;
mod queue;
mod scenarios;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    stompede_examples::init_logging();
    let options = match options::Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\n\n{}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    match scenarios::run(&options).await {
        Ok(report) => {
            println!("{}", report.human);
            println!("RESULT {}", report.json);
            if report.clean { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
