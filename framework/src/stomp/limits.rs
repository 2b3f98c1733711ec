//! Size limits the decoder enforces, so a peer can never make it allocate without bound.

/// Limits on inbound frames. Exceeding one is a [`DecodeError`](super::DecodeError) that names
/// the limit; the decoder never buffers more than `max_frame_size` bytes of one frame.
///
/// ```
/// use stompede::stomp::Limits;
/// let limits = Limits { max_frame_size: 1 << 20, max_body_size: 1 << 20, ..Limits::default() };
/// assert_eq!(limits.max_header_count, Limits::default().max_header_count);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (command, headers and body) in bytes. Default 64 KiB, Spring's
    /// message size limit.
    pub max_frame_size: usize,
    /// Largest body in bytes. Default 64 KiB.
    pub max_body_size: usize,
    /// Most header entries in one frame, repeats included. Default 128.
    pub max_header_count: usize,
    /// Longest command or header line in bytes. Default 16 KiB, room for large tokens in a
    /// CONNECT frame.
    pub max_header_line: usize,
}

impl Limits {
    /// 64 KiB: the default frame and body size limit.
    pub const DEFAULT_FRAME_SIZE: usize = 64 * 1024;

    /// No practical limit (for trusted peers such as a relay to a broker you run).
    pub const UNLIMITED: Limits = Limits {
        max_frame_size: usize::MAX,
        max_body_size: usize::MAX,
        max_header_count: usize::MAX,
        max_header_line: usize::MAX,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: Self::DEFAULT_FRAME_SIZE,
            max_body_size: Self::DEFAULT_FRAME_SIZE,
            max_header_count: 128,
            max_header_line: 16 * 1024,
        }
    }
}
