//! Brokers: where messages sent to broker destinations (`/topic`, `/queue`) go, and who
//! receives them.
//!
//! The [`SimpleBroker`] keeps everything in memory in one process. The relay to an external
//! broker (RabbitMQ over STOMP) implements the same operations for several processes.

mod listener;
mod pattern;
mod registry;
mod simple;
mod subscriber;

pub use listener::Listener;
pub use simple::SimpleBroker;
pub use subscriber::AckMode;

pub(crate) use pattern::Pattern;
pub(crate) use subscriber::{ListenerFn, Subscriber};
