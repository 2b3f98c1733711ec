//! A STOMP frame inspector: reads a byte stream on standard input and prints each frame
//! the way the stompede decoder sees it, or the precise error a server would send back.
//!
//! ```text
//! printf 'SEND\ndestination:/app/hello\n\n{"name":"Ada"}\0' | cargo run --example frames
//! cargo run --example frames -- --version 1.0 < captured.stomp
//! ```
//!
//! Without input on a terminal it decodes a built-in sample session instead.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use bytes::BytesMut;
use stompede::stomp::{Decoder, Frame, Limits, Version};

const SAMPLE: &[u8] = b"CONNECT\naccept-version:1.1,1.2\nhost:localhost\nheart-beat:10000,10000\n\n\0\n\
SUBSCRIBE\nid:sub-0\ndestination:/topic/greetings\n\n\0\n\
SEND\ndestination:/app/hello\ncontent-type:application/json\ncontent-length:14\n\n{\"name\":\"Ada\"}\0\n\
SEND\ndestination:/app/hello\nnote:escaped\\cheader\\nvalue\n\nplain body\0\
PUBLISH\ndestination:/oops\n\n\0";

fn main() -> ExitCode {
    stompede_examples::init_logging();
    let mut version = Version::V1_2;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().as_deref().and_then(Version::parse)) {
            ("--version", Some(v)) => version = v,
            _ => {
                eprintln!("usage: frames [--version 1.0|1.1|1.2] < stream");
                return ExitCode::from(2);
            }
        }
    }
    let mut input = Vec::new();
    if std::io::stdin().is_terminal() {
        println!("(no input piped in: decoding a sample session)\n");
        input.extend_from_slice(SAMPLE);
    } else if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("could not read standard input: {e}");
        return ExitCode::FAILURE;
    }

    let mut decoder = Decoder::new(Limits::default());
    decoder.set_version(version);
    let mut buf = BytesMut::from(&input[..]);
    let mut count = 0;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                count += 1;
                print_frame(count, &frame);
            }
            Ok(None) if decoder.is_mid_frame() => {
                println!("input ends inside a frame ({} bytes unread)", buf.len());
                return ExitCode::FAILURE;
            }
            Ok(None) => {
                println!("{count} frame(s), {} heart-beat(s)", decoder.heart_beats());
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                println!("after {count} frame(s) the server would reply:");
                println!("  ERROR message:{e}");
                if let Some(receipt) = e.receipt() {
                    println!("        receipt-id:{receipt}");
                }
                return ExitCode::FAILURE;
            }
        }
    }
}

fn print_frame(n: usize, frame: &Frame) {
    println!("#{n} {}", frame.command);
    for (name, value) in frame.headers.iter() {
        println!("  {name}: {value:?}");
    }
    match frame.body_str() {
        Some(text) if !text.is_empty() => println!("  body ({} bytes): {text:?}", frame.body.len()),
        Some(_) => {}
        None => println!("  body: {} bytes of binary", frame.body.len()),
    }
    println!();
}
