//! The STOMP commands, client and server.

use std::fmt;

/// Every command of STOMP 1.0, 1.1 and 1.2.
///
/// ```
/// use stompede::stomp::Command;
/// assert_eq!(Command::parse(b"SEND"), Some(Command::Send));
/// assert_eq!(Command::Message.as_str(), "MESSAGE");
/// assert!(Command::Subscribe.is_client());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Client: open a session (STOMP 1.0 name).
    Connect,
    /// Client: open a session (STOMP 1.1+ name; same meaning as `CONNECT`).
    Stomp,
    /// Client: send a message to a destination.
    Send,
    /// Client: subscribe to a destination.
    Subscribe,
    /// Client: end a subscription.
    Unsubscribe,
    /// Client: acknowledge a message.
    Ack,
    /// Client: refuse a message (STOMP 1.1+).
    Nack,
    /// Client: start a transaction.
    Begin,
    /// Client: commit a transaction.
    Commit,
    /// Client: roll back a transaction.
    Abort,
    /// Client: close the session.
    Disconnect,
    /// Server: the session is open.
    Connected,
    /// Server: a message for a subscription.
    Message,
    /// Server: a frame that asked for a receipt was processed.
    Receipt,
    /// Server: something went wrong; the server closes the connection afterwards.
    Error,
}

impl Command {
    /// All commands, client commands first.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// Recognises a command line (without its line ending). Commands are case-sensitive.
    pub fn parse(line: &[u8]) -> Option<Command> {
        Some(match line {
            b"SEND" => Command::Send,
            b"MESSAGE" => Command::Message,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"CONNECTED" => Command::Connected,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            _ => return None,
        })
    }

    /// The command as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Whether a client sends this command.
    pub const fn is_client(self) -> bool {
        !self.is_server()
    }

    /// Whether a server sends this command.
    pub const fn is_server(self) -> bool {
        matches!(self, Command::Connected | Command::Message | Command::Receipt | Command::Error)
    }

    /// Whether header values of this command are escaped. The specification exempts
    /// `CONNECT` and `CONNECTED` so that 1.0 peers can still read them.
    pub const fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Connected)
    }

    /// Whether a frame with this command may carry a body. Only `SEND`, `MESSAGE` and `ERROR` may.
    pub const fn allows_body(self) -> bool {
        matches!(self, Command::Send | Command::Message | Command::Error)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips_through_its_name() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str().as_bytes()), Some(c));
        }
    }

    #[test]
    fn commands_are_case_sensitive() {
        assert_eq!(Command::parse(b"send"), None);
        assert_eq!(Command::parse(b"SEND "), None);
        assert_eq!(Command::parse(b""), None);
    }

    #[test]
    fn exactly_four_server_commands() {
        assert_eq!(Command::ALL.iter().filter(|c| c.is_server()).count(), 4);
    }
}
