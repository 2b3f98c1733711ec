//! Protocol versions and the `heart-beat` header.

use std::fmt;
use std::time::Duration;

/// A STOMP protocol version.
///
/// Versions are ordered, so the highest common one is a `max`.
///
/// ```
/// use stompede::stomp::Version;
/// let all = [Version::V1_0, Version::V1_1, Version::V1_2];
/// assert_eq!(Version::negotiate(Some("1.1,1.2"), &all), Some(Version::V1_2));
/// assert_eq!(Version::negotiate(None, &all), Some(Version::V1_0));
/// assert_eq!(Version::negotiate(Some("2.0"), &all), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// STOMP 1.0: no header escaping, no NACK, no heart-beats.
    V1_0,
    /// STOMP 1.1: header escaping (`\n`, `\c`, `\\`), heart-beats, NACK.
    V1_1,
    /// STOMP 1.2: adds `\r` escaping, CRLF line endings and `ack` ids.
    V1_2,
}

impl Version {
    /// The version as written in `accept-version` and `version` headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses one version number (`"1.0"`, `"1.1"`, `"1.2"`), ignoring surrounding blanks.
    pub fn parse(s: &str) -> Option<Version> {
        match s.trim() {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }

    /// Picks the highest version that the client accepts and `supported` contains.
    ///
    /// A client that sends no `accept-version` header speaks 1.0 (specification, "Protocol
    /// Negotiation"). Unknown entries in the header are ignored.
    pub fn negotiate(accept_version: Option<&str>, supported: &[Version]) -> Option<Version> {
        match accept_version {
            None => supported.contains(&Version::V1_0).then_some(Version::V1_0),
            Some(list) => {
                list.split(',').filter_map(Version::parse).filter(|v| supported.contains(v)).max()
            }
        }
    }

    /// The WebSocket subprotocol name for this version (`v12.stomp`).
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Version::V1_0 => "v10.stomp",
            Version::V1_1 => "v11.stomp",
            Version::V1_2 => "v12.stomp",
        }
    }

    /// The version a WebSocket subprotocol name stands for.
    pub fn from_subprotocol(name: &str) -> Option<Version> {
        match name.trim() {
            "v10.stomp" => Some(Version::V1_0),
            "v11.stomp" => Some(Version::V1_1),
            "v12.stomp" => Some(Version::V1_2),
            _ => None,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two numbers of a `heart-beat` header, in milliseconds; 0 means "none".
///
/// In a client's CONNECT, `send` is how often the client can send heart-beats and `receive`
/// how often it wants to receive them; in CONNECTED the server states the same from its side.
///
/// ```
/// use stompede::stomp::HeartBeat;
/// use std::time::Duration;
/// let client = HeartBeat::parse("4000,10000").unwrap();
/// let server = HeartBeat { send: 10_000, receive: 10_000 };
/// // The server sends every max(server.send, client.receive) ms...
/// assert_eq!(server.outgoing(client), Some(Duration::from_millis(10_000)));
/// // ...and expects to hear from the client every max(server.receive, client.send) ms.
/// assert_eq!(server.incoming(client), Some(Duration::from_millis(10_000)));
/// assert_eq!(HeartBeat::parse("x,1"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeartBeat {
    /// Smallest interval at which this side can send heart-beats (ms), 0 for never.
    pub send: u32,
    /// Interval at which this side wants to receive heart-beats (ms), 0 for never.
    pub receive: u32,
}

impl HeartBeat {
    /// No heart-beats in either direction.
    pub const NONE: HeartBeat = HeartBeat { send: 0, receive: 0 };

    /// Parses `"cx,cy"`. Blanks around the numbers are tolerated.
    pub fn parse(value: &str) -> Option<HeartBeat> {
        let (a, b) = value.split_once(',')?;
        Some(HeartBeat { send: a.trim().parse().ok()?, receive: b.trim().parse().ok()? })
    }

    /// The header value, `"send,receive"`.
    pub fn to_header_value(self) -> String {
        format!("{},{}", self.send, self.receive)
    }

    /// How often this side (`self`) must send to `peer`: `None` when either side declines.
    pub fn outgoing(self, peer: HeartBeat) -> Option<Duration> {
        (self.send != 0 && peer.receive != 0)
            .then(|| Duration::from_millis(u64::from(self.send.max(peer.receive))))
    }

    /// How often this side can expect to hear from `peer`: `None` when either side declines.
    pub fn incoming(self, peer: HeartBeat) -> Option<Duration> {
        peer.outgoing(self)
    }

    /// How long silence from a peer that beats every `interval` is tolerated before the peer is
    /// deemed gone: the interval plus half of it again (network jitter, a busy peer), and at
    /// least one second more. Both stompede's server and its client apply this rule.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stompede::stomp::HeartBeat;
    /// assert_eq!(HeartBeat::silence_allowance(Duration::from_secs(10)), Duration::from_secs(15));
    /// assert_eq!(HeartBeat::silence_allowance(Duration::from_millis(100)), Duration::from_millis(1100));
    /// ```
    pub fn silence_allowance(interval: Duration) -> Duration {
        interval + (interval / 2).max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_ignores_unsupported_and_garbage() {
        let only_12 = [Version::V1_2];
        assert_eq!(Version::negotiate(Some("1.0,1.1"), &only_12), None);
        assert_eq!(Version::negotiate(Some("foo, 1.2 ,bar"), &only_12), Some(Version::V1_2));
        assert_eq!(Version::negotiate(None, &only_12), None);
    }

    #[test]
    fn zero_on_either_side_disables_heart_beats() {
        let server = HeartBeat { send: 10_000, receive: 10_000 };
        assert_eq!(server.outgoing(HeartBeat { send: 5, receive: 0 }), None);
        assert_eq!(server.incoming(HeartBeat { send: 0, receive: 5 }), None);
        assert_eq!(
            server.outgoing(HeartBeat { send: 0, receive: 20_000 }),
            Some(Duration::from_secs(20))
        );
    }

    #[test]
    fn heart_beat_header_round_trips() {
        let hb = HeartBeat { send: 1, receive: 4_000_000_000 };
        assert_eq!(HeartBeat::parse(&hb.to_header_value()), Some(hb));
        assert_eq!(HeartBeat::parse("1"), None);
        assert_eq!(HeartBeat::parse("-1,0"), None);
    }

    #[test]
    fn subprotocols_map_to_versions() {
        for v in [Version::V1_0, Version::V1_1, Version::V1_2] {
            assert_eq!(Version::from_subprotocol(v.subprotocol()), Some(v));
        }
        assert_eq!(Version::from_subprotocol("stomp"), None);
    }
}
