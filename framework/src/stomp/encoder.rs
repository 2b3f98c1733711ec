//! Frame encoding, and the encode-once fan-out of MESSAGE frames.
//!
//! Encoding never copies a large body: an [`EncodedFrame`] is the encoded head plus the body's
//! shared [`Bytes`], ready for a vectored write (a body of up to [`INLINE_BODY`] bytes is
//! copied after the head instead: one buffer). For a message going to many subscribers,
//! [`PreparedMessage`] encodes the shared headers once per protocol version and each
//! subscriber only adds its own small head (`subscription`, `message-id`, `ack`), or shares a
//! whole contiguous frame with the subscribers whose head is the same.

use std::io::IoSlice;
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};

use super::escape::{Escaping, may_need_escaping, put_all, write_header};
use super::headers::known_name;
use super::{ByteStr, Command, Frame, Headers, Version, names};

const NUL: &[u8] = b"\0";

/// An encoded frame: its head and its body, plus the closing NUL.
///
/// A body of up to [`INLINE_BODY`] bytes is copied after the head, into one buffer with it; a
/// larger one is shared with the frame it came from, never copied.
///
/// ```
/// use stompede::stomp::{encode, Command, Frame, Version};
/// let frame = Frame::new(Command::Send).header("destination", "/queue/a").body("hi");
/// let encoded = encode(&frame, Version::V1_2);
/// assert_eq!(&encoded.to_bytes()[..], b"SEND\ndestination:/queue/a\ncontent-length:2\n\nhi\0");
/// // A large body is not copied: the encoded frame points at the same memory.
/// let frame = frame.body(vec![b'x'; 64 * 1024]);
/// let encoded = encode(&frame, Version::V1_2);
/// assert_eq!(encoded.body().as_ptr(), frame.body.as_ptr());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedFrame {
    head: Bytes,
    // A body kept apart from `head` (a large one, shared rather than copied), boxed: most
    // frames have none (a small body is copied into `head`, and the frame is one buffer to
    // clone and to drop), and a queued frame is smaller for it (56 bytes, from 80: a fan-out's
    // queues hold one per delivery). None for an empty body. The closing NUL follows the
    // parts when the body is kept apart; otherwise `head` is the whole frame.
    body: Option<Box<Bytes>>,
    // Whether the whole frame is UTF-8 (headers always are; this records the body's check).
    utf8: Utf8,
}

/// Whether an [`EncodedFrame`] is UTF-8: a word, like the frame's other fields. A queued frame
/// is moved into its queue's slot a word at a time (`ring::write_in_words`), and a word holding
/// a one-byte field (and padding) would be read whole from the byte just stored: a load the
/// processor cannot serve from a smaller pending store waits for that store to reach the cache,
/// and did at every delivery of a fan-out (with `bool`s: 20 % of `publish_with`'s own time under
/// a CPU cap, `perf annotate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u64)]
enum Utf8 {
    #[default]
    No = 0,
    Yes = 1,
}

impl From<bool> for Utf8 {
    #[inline(always)]
    fn from(utf8: bool) -> Utf8 {
        if utf8 { Utf8::Yes } else { Utf8::No }
    }
}

impl EncodedFrame {
    /// The command and headers, up to and including the blank line (or the whole frame, for
    /// one made by [`PreparedMessage::contiguous_for`]).
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The body, when it is kept apart from the head (larger than [`INLINE_BODY`]): shared with
    /// the frame it came from. Empty when the body is empty or travels in the head.
    pub fn body(&self) -> &Bytes {
        static EMPTY: Bytes = Bytes::new();
        self.body.as_deref().unwrap_or(&EMPTY)
    }

    /// Total size on the wire, NUL included.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.body {
            None => self.head.len(),
            Some(body) => self.head.len() + body.len() + 1,
        }
    }

    /// Whether the whole frame is valid UTF-8, so it can travel as a WebSocket text message.
    pub fn is_utf8(&self) -> bool {
        self.utf8 == Utf8::Yes
    }

    /// Always false: an encoded frame has at least a command and a NUL.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The three parts in wire order, for a vectored write.
    pub fn chunks(&self) -> [&[u8]; 3] {
        match &self.body {
            None => [&self.head, b"", b""],
            Some(body) => [&self.head, body, NUL],
        }
    }

    /// The frame's first byte (its command's), if any.
    pub fn first_byte(&self) -> Option<u8> {
        self.head.first().copied()
    }

    /// The parts as `IoSlice`s for `write_vectored`.
    pub fn io_slices(&self) -> [IoSlice<'_>; 3] {
        self.chunks().map(IoSlice::new)
    }

    /// Appends the whole frame to `out` (this copies the body).
    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(self.len());
        for chunk in self.chunks() {
            out.put_slice(chunk);
        }
    }

    /// Appends the whole frame to `out`, which has room for it (a write buffer being
    /// filled): the parts that are not empty, one append each.
    #[inline(always)]
    pub(crate) fn write_parts(&self, out: &mut BytesMut) {
        out.extend_from_slice(&self.head);
        if let Some(body) = &self.body {
            out.extend_from_slice(body);
            out.put_u8(0);
        }
    }

    /// [`to_bytes`](Self::to_bytes), taking the buffer of a contiguous frame rather than
    /// sharing it.
    pub fn into_bytes(self) -> Bytes {
        if self.is_contiguous() {
            return self.head;
        }
        self.to_bytes()
    }

    /// Whether `head` is the whole frame (no separate parts, no NUL to add).
    fn is_contiguous(&self) -> bool {
        self.body.is_none()
    }

    /// The whole frame as one contiguous buffer. This copies, unless the frame is already
    /// contiguous (as [`PreparedMessage::contiguous_for`] makes it).
    pub fn to_bytes(&self) -> Bytes {
        if self.is_contiguous() {
            return self.head.clone();
        }
        let mut out = BytesMut::with_capacity(self.len());
        self.write_to(&mut out);
        out.freeze()
    }
}

/// The largest body an [`EncodedFrame`] carries in its head's buffer (copied, where a larger one
/// is shared): a copy of this much costs less than keeping a second buffer for every frame.
pub const INLINE_BODY: usize = 1024;

/// Encodes `frame` for a peer speaking `version`: a body of up to [`INLINE_BODY`] bytes in one
/// buffer with the head, a larger one shared, not copied.
///
/// A `content-length` header is written for every non-empty body (any `content-length` the
/// frame carries is replaced by the true one), so bodies may contain NUL bytes. Header text is
/// escaped as the version requires; see the [module docs](super) for 1.0.
pub fn encode(frame: &Frame, version: Version) -> EncodedFrame {
    let escaping = Escaping::for_frame(version, frame.command.escapes_headers());
    let room = head_capacity(frame.command, &frame.headers) + room_after_head(&frame.body);
    let mut head = BytesMut::with_capacity(room);
    head.put_slice(frame.command.as_str().as_bytes());
    head.put_u8(b'\n');
    let had_length =
        write_headers(&mut head, frame.headers.iter(), escaping, frame.headers.is_verbatim());
    if !frame.body.is_empty() || had_length {
        write_content_length(&mut head, frame.body.len());
    }
    head.put_u8(b'\n');
    debug_assert_no_nul(&head);
    with_body(head, &frame.body, std::str::from_utf8(&frame.body).is_ok())
}

/// The room a frame's head buffer needs after the head for `body` (see [`with_body`]).
fn room_after_head(body: &[u8]) -> usize {
    if body.len() <= INLINE_BODY { body.len() + 1 } else { 0 }
}

/// The frame of `head` (the command and headers, with [`room_after_head`] to spare) and `body`
/// (whose UTF-8 check is `utf8`): a body of up to [`INLINE_BODY`] bytes and the NUL appended to
/// the head, one buffer; a larger body kept apart, shared.
fn with_body(mut head: BytesMut, body: &Bytes, utf8: bool) -> EncodedFrame {
    if body.len() <= INLINE_BODY {
        put_all(&mut head, [&body[..], NUL]);
        return EncodedFrame { head: head.freeze(), body: None, utf8: utf8.into() };
    }
    EncodedFrame { head: head.freeze(), body: Some(Box::new(body.clone())), utf8: utf8.into() }
}

/// Encodes `frame` into one contiguous buffer: [`encode`] followed by
/// [`EncodedFrame::write_to`].
pub fn encode_to_bytes(frame: &Frame, version: Version) -> Bytes {
    encode(frame, version).to_bytes()
}

fn head_capacity(command: Command, headers: &Headers) -> usize {
    command.as_str().len() + 32 + headers.text_len()
}

/// Writes `name:value\n` for each header but a `content-length`, escaped for `escaping`
/// unless the headers are `verbatim` (see [`Headers::is_verbatim`]: then as they are, with no
/// look at their text); returns whether a `content-length` was skipped.
fn write_headers<'a>(
    out: &mut BytesMut,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    escaping: Escaping,
    verbatim: bool,
) -> bool {
    let mut had_length = false;
    for (name, value) in headers {
        if name == names::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        match verbatim {
            true => put_all(out, [name.as_bytes(), b":", value.as_bytes(), b"\n"]),
            false => write_header(out, name.as_bytes(), value.as_bytes(), escaping),
        }
    }
    had_length
}

#[inline(always)]
fn write_content_length(out: &mut BytesMut, len: usize) {
    put_all(out, [b"content-length:", itoa::Buffer::new().format(len).as_bytes(), b"\n"]);
}

/// A MESSAGE to be delivered to many subscribers, encoded once.
///
/// The headers common to every delivery (`destination`, `content-type`, the publisher's own
/// headers) and the `content-length` are encoded once per protocol version in use, lazily;
/// [`for_subscriber`](PreparedMessage::for_subscriber) adds only the per-delivery headers.
///
/// ```
/// use stompede::stomp::{Headers, PreparedMessage, Version};
/// let mut headers = Headers::new();
/// headers.push("destination", "/topic/news");
/// let message = PreparedMessage::new(headers.clone(), "extra! extra!".into());
/// let a = message.for_subscriber(Version::V1_2, &[("subscription", "sub-0"), ("message-id", "7")]);
/// assert_eq!(&a.to_bytes()[..],
///     &b"MESSAGE\nsubscription:sub-0\nmessage-id:7\ndestination:/topic/news\ncontent-length:13\n\nextra! extra!\0"[..]);
/// // The shared headers were encoded once; a large body is shared by every delivery.
/// let message = PreparedMessage::new(headers, vec![b'x'; 64 * 1024].into());
/// let a = message.for_subscriber(Version::V1_2, &[("subscription", "sub-0"), ("message-id", "7")]);
/// let b = message.for_subscriber(Version::V1_2, &[("subscription", "sub-1"), ("message-id", "7")]);
/// assert_eq!(a.body().as_ptr(), b.body().as_ptr());
/// ```
#[derive(Debug)]
pub struct PreparedMessage {
    headers: SharedHeaders,
    body: Bytes,
    body_utf8: bool,
    // The broker's messages keep their id apart from `headers` (`with_message_id`): no
    // allocation for its text, which only the encoded frames carry.
    message_id: Option<u64>,
    // The complete frame built when the message was made, for the delivery it was made for
    // (`build_first_frame`): read first, and set with no once-only initialisation. Keyed by
    // version and subscription head (the shared headers' escaping depends on the version).
    made_with: Option<(Version, Bytes, Bytes)>,
    // What deliveries build later, allocated at the first need: a broadcast to sessions whose
    // frame was built when it was made never needs it, and the message stays small (it is
    // moved into its `Arc` once per publish). Shared with the message's copy (`copy`).
    later: OnceLock<Arc<Later>>,
}

/// A [`PreparedMessage`]'s shared headers: its own, or a template's that every message of a
/// publisher repeating itself shares (see [`MessageTemplate`]).
#[derive(Clone, Debug)]
enum SharedHeaders {
    Own(Headers),
    Template(Arc<MessageTemplate>),
}

/// The shared headers of the messages a publisher sends again and again with the same head
/// (the same destination and headers), made once and shared by each of them: no headers to
/// filter, copy or drop per message, and, when no escaping changes them, their lines encoded
/// once (`content-length` aside, which each message's body decides).
#[derive(Debug)]
pub(crate) struct MessageTemplate {
    /// Owned (no buffer of the publisher's reads is kept alive by a template).
    headers: Headers,
    text_len: usize,
    /// The lines, when no escaping changes a byte of them.
    encoded: Option<Encoded>,
}

/// A [`MessageTemplate`]'s lines, encoded.
#[derive(Debug)]
struct Encoded {
    /// The first header's line: the `message-id` goes after it.
    first: Bytes,
    /// The other lines.
    rest: Bytes,
    /// `rest`, the `content-length` line and the blank line, for the length of the first body
    /// encoded (a publisher repeating its head usually repeats its body's length too).
    ending: OnceLock<(usize, Bytes)>,
}

impl Encoded {
    /// What follows the `message-id` line, for a body of `len` bytes: whole, when it is the
    /// length `ending` holds.
    fn ending(&self, len: usize) -> Option<&Bytes> {
        let (known, ending) = self.ending.get_or_init(|| {
            let mut ending = BytesMut::with_capacity(self.rest.len() + 40);
            ending.put_slice(&self.rest);
            write_content_length(&mut ending, len);
            ending.put_u8(b'\n');
            (len, ending.freeze())
        });
        (*known == len).then_some(ending)
    }
}

impl MessageTemplate {
    /// A template of `headers` (a message's shared headers; a `content-length` among them is
    /// left out, as every encoding leaves it out): copied into strings of their own.
    pub(crate) fn new(headers: &Headers) -> MessageTemplate {
        // Text that no way of writing it changes is written alike in every version.
        let plain = |text: &str| !may_need_escaping(text.as_bytes());
        let verbatim = headers.iter().all(|(name, value)| plain(name) && plain(value));
        let encoded = verbatim.then(|| {
            let mut lines = headers.iter();
            let mut first = BytesMut::new();
            write_headers(&mut first, lines.by_ref().take(1), Escaping::V1_2, true);
            let mut rest = BytesMut::new();
            write_headers(&mut rest, lines, Escaping::V1_2, true);
            Encoded { first: first.freeze(), rest: rest.freeze(), ending: OnceLock::new() }
        });
        let headers: Headers = headers
            .iter()
            .map(|(name, value)| {
                let name = known_name(name.as_bytes())
                    .map_or_else(|| ByteStr::from(name.to_owned()), ByteStr::from_static);
                (name, ByteStr::from(value.to_owned()))
            })
            .collect();
        MessageTemplate { text_len: headers.text_len(), headers, encoded }
    }

    /// The headers.
    pub(crate) fn headers(&self) -> &Headers {
        &self.headers
    }
}

/// A [`PreparedMessage`]'s frames and shared headers built after it was made.
#[derive(Debug, Default)]
struct Later {
    // Complete frames, by subscriber head. Subscriptions often share a head (every browser's
    // first subscription is `sub-0`), and then share one buffer. The first head's is read
    // without a lock (a mutex per delivery showed in fan-out profiles); the others' wait
    // behind the mutex.
    first: OnceLock<(Version, Bytes, Bytes)>,
    complete: std::sync::Mutex<Vec<(Version, Bytes, Bytes)>>,
    // One encoding of the shared headers per escaping style (none, 1.1, 1.2).
    shared: [OnceLock<Bytes>; 3],
}

impl Later {
    fn shared_slot(&self, version: Version) -> &OnceLock<Bytes> {
        match Escaping::for_frame(version, true) {
            Escaping::None => &self.shared[0],
            Escaping::V1_1 => &self.shared[1],
            Escaping::V1_2 => &self.shared[2],
        }
    }
}

impl PreparedMessage {
    /// Prepares a message; `headers` must not contain per-delivery headers.
    pub fn new(headers: Headers, body: Bytes) -> Self {
        PreparedMessage::with_known_utf8(headers, body, false)
    }

    /// [`new`](Self::new), for a body already known to be UTF-8 (`known_utf8`), which is then
    /// not checked again (otherwise it is).
    #[inline]
    pub(crate) fn with_known_utf8(headers: Headers, body: Bytes, known_utf8: bool) -> Self {
        PreparedMessage::with_shared(SharedHeaders::Own(headers), body, known_utf8)
    }

    /// [`with_known_utf8`](Self::with_known_utf8) with the shared headers of `template`.
    #[inline]
    pub(crate) fn from_template(
        template: Arc<MessageTemplate>,
        body: Bytes,
        known_utf8: bool,
    ) -> Self {
        PreparedMessage::with_shared(SharedHeaders::Template(template), body, known_utf8)
    }

    #[inline(always)]
    fn with_shared(headers: SharedHeaders, body: Bytes, known_utf8: bool) -> Self {
        let body_utf8 = known_utf8 || std::str::from_utf8(&body).is_ok();
        debug_assert_eq!(body_utf8, std::str::from_utf8(&body).is_ok(), "a body said to be UTF-8");
        PreparedMessage {
            headers,
            body,
            body_utf8,
            message_id: None,
            made_with: None,
            later: OnceLock::new(),
        }
    }

    /// The shared headers. A message the broker made keeps its `message-id` apart (see
    /// [`message_id`](Self::message_id)); its frames carry it all the same.
    pub fn headers(&self) -> &Headers {
        match &self.headers {
            SharedHeaders::Own(headers) => headers,
            SharedHeaders::Template(template) => &template.headers,
        }
    }

    /// The length of the shared headers' text (see `Headers::text_len`).
    pub(crate) fn headers_text_len(&self) -> usize {
        match &self.headers {
            SharedHeaders::Own(headers) => headers.text_len(),
            SharedHeaders::Template(template) => template.text_len,
        }
    }

    /// The `message-id` the broker gave the message, when it keeps it apart from
    /// [`headers`](Self::headers) (written into every frame after the first shared header).
    pub fn message_id(&self) -> Option<u64> {
        self.message_id
    }

    /// A copy sharing the headers' text, the body, the first frame built and what either
    /// builds later (one [`Later`] for both: a broadcast's direct deliveries build on the
    /// message, the ones that keep it on its copy, and a subscription head both kinds share
    /// is built once).
    pub(crate) fn copy(&self) -> Self {
        PreparedMessage {
            headers: self.headers.clone(),
            body: self.body.clone(),
            body_utf8: self.body_utf8,
            message_id: self.message_id,
            made_with: self.made_with.clone(),
            later: OnceLock::from(self.later.get_or_init(Arc::default).clone()),
        }
    }

    /// The message with its `message-id` given, kept apart from `headers` (the broker's own
    /// messages: no text of the id is made but the one in the encoded frames).
    #[inline]
    pub(crate) fn with_message_id(mut self, id: u64) -> Self {
        self.message_id = Some(id);
        self
    }

    /// Builds the complete frame for `version` and subscription `head` now, as
    /// [`contiguous_for`](Self::contiguous_for) would at its first call: a message made for a
    /// delivery it knows builds that one's frame before it is shared, with no once-only
    /// initialisation to go through (which cost a tenth of a fan-out to ten subscribers).
    pub(crate) fn build_first_frame(&mut self, version: Version, head: &Bytes) {
        if self.made_with.is_none() {
            let whole = self.build(version, head);
            self.made_with = Some((version, head.clone(), whole));
        }
    }

    /// The shared headers with the `message-id` among them (after the first one, where the
    /// broker puts it): what an in-process listener sees.
    pub(crate) fn headers_with_id(&self) -> std::borrow::Cow<'_, Headers> {
        let Some(id) = self.message_id else { return std::borrow::Cow::Borrowed(self.headers()) };
        let mut headers = Headers::with_capacity(self.headers().len() + 1);
        let mut entries = self.headers().entries().iter();
        if let Some((name, value)) = entries.next() {
            headers.push(name.clone(), value.clone());
        }
        headers.push(names::MESSAGE_ID, itoa::Buffer::new().format(id).to_owned());
        for (name, value) in entries {
            headers.push(name.clone(), value.clone());
        }
        std::borrow::Cow::Owned(headers)
    }

    /// Room for the shared part: the headers, the `message-id` kept apart, `content-length`.
    fn shared_capacity(&self) -> usize {
        let id = if self.message_id.is_some() { b"message-id:\n".len() + 20 } else { 0 };
        head_capacity(Command::Message, self.headers()) + id
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The encoded shared headers for `version` (encoded on first use, then reused).
    pub fn shared_part(&self, version: Version) -> &Bytes {
        let escaping = Escaping::for_frame(version, true);
        self.later().shared_slot(version).get_or_init(|| {
            let mut out = BytesMut::with_capacity(self.shared_capacity());
            self.encode_shared(&mut out, escaping);
            out.freeze()
        })
    }

    /// What deliveries build later (allocated now if nothing was).
    fn later(&self) -> &Later {
        self.later.get_or_init(Arc::default)
    }

    /// Appends the shared headers, the `content-length` and the blank line.
    fn encode_shared(&self, out: &mut BytesMut, escaping: Escaping) {
        let start = out.len();
        let encoded = match &self.headers {
            SharedHeaders::Template(template) => template.encoded.as_ref(),
            SharedHeaders::Own(_) => None,
        };
        if let Some(encoded) = encoded {
            let mut text = itoa::Buffer::new();
            let id = match self.message_id {
                Some(id) => [&b"message-id:"[..], text.format(id).as_bytes(), b"\n"],
                None => [&[][..]; 3],
            };
            if let Some(ending) = encoded.ending(self.body.len()) {
                put_all(out, [&encoded.first[..], id[0], id[1], id[2], ending]);
                debug_assert_no_nul(&out[start..]);
                return;
            }
            put_all(out, [&encoded.first[..], id[0], id[1], id[2], &encoded.rest]);
        } else {
            // Lines of a received head that no escaping changes are copied as they are.
            let verbatim = self.headers().is_verbatim();
            let mut headers = self.headers().iter();
            if let Some(id) = self.message_id {
                // After the first header (the destination, where the broker puts it).
                write_headers(out, headers.by_ref().take(1), escaping, verbatim);
                put_all(out, [b"message-id:", itoa::Buffer::new().format(id).as_bytes(), b"\n"]);
            }
            write_headers(out, headers, escaping, verbatim);
        }
        write_content_length(out, self.body.len());
        out.put_u8(b'\n');
        debug_assert_no_nul(&out[start..]);
    }

    /// The MESSAGE frame for one subscriber, with `per_delivery` headers first (so they win
    /// over any same-named shared header).
    pub fn for_subscriber(&self, version: Version, per_delivery: &[(&str, &str)]) -> EncodedFrame {
        self.with_head(version, message_head(version, per_delivery))
    }

    /// The MESSAGE frame for one subscriber whose head was encoded ahead of time with
    /// [`message_head`] (for the same `version`): its head, the shared headers (encoded once)
    /// and a body of up to [`INLINE_BODY`] bytes are copied into one buffer; a larger body is
    /// shared.
    pub fn with_head(&self, version: Version, head: Bytes) -> EncodedFrame {
        let shared = self.shared_part(version);
        let room = head.len() + shared.len() + room_after_head(&self.body);
        let mut whole_head = BytesMut::with_capacity(room);
        whole_head.put_slice(&head);
        whole_head.put_slice(shared);
        with_body(whole_head, &self.body, self.body_utf8)
    }

    /// Like [`with_head`](PreparedMessage::with_head), but as one contiguous buffer, for
    /// transports that need one (a WebSocket message). The first delivery with a given head
    /// builds it; later deliveries with an identical head share it, without a copy.
    #[inline(always)]
    pub fn contiguous_for(&self, version: Version, head: &Bytes) -> EncodedFrame {
        // Inlined for the common case, a delivery with the first head's frame; the rest is
        // out of line.
        match self.made_frame(version, head) {
            Some((_, make)) => make(),
            None => self.whole(self.contiguous_from_cache(version, head)),
        }
    }

    /// A contiguous frame of this message: `whole` is all of it.
    #[inline(always)]
    fn whole(&self, whole: Bytes) -> EncodedFrame {
        EncodedFrame { head: whole, body: None, utf8: self.body_utf8.into() }
    }

    /// The frame [`contiguous_for`](Self::contiguous_for) gives `version` and `head` when it
    /// was built as the message was made (`build_first_frame`): its length, and what makes it
    /// (one reference more to the buffer), for [`Outbox::push_with`](crate::outbox::Outbox).
    #[inline(always)]
    pub(crate) fn made_frame(
        &self,
        version: Version,
        head: &Bytes,
    ) -> Option<(usize, impl FnOnce() -> EncodedFrame + '_)> {
        match &self.made_with {
            Some((v, h, whole)) if *v == version && same_head(h, head) => {
                Some((whole.len(), || self.whole(whole.clone())))
            }
            _ => None,
        }
    }

    /// [`contiguous_for`](Self::contiguous_for) for a message made without its first frame.
    #[inline(never)]
    fn contiguous_from_cache(&self, version: Version, head: &Bytes) -> Bytes {
        match self.later.get().and_then(|later| later.first.get()) {
            Some((v, h, whole)) if *v == version && same_head(h, head) => whole.clone(),
            _ => self.contiguous_slow(version, head),
        }
    }

    /// [`contiguous_for`](Self::contiguous_for) for the first delivery, or another head.
    #[cold]
    #[inline(never)]
    fn contiguous_slow(&self, version: Version, head: &Bytes) -> Bytes {
        const CACHED_HEADS: usize = 8;
        let later = self.later();
        let first = later.first.get_or_init(|| (version, head.clone(), self.build(version, head)));
        if first.0 == version && first.1 == head {
            return first.2.clone();
        }
        let mut complete = crate::locks::lock(&later.complete);
        match complete.iter().find(|(v, h, _)| *v == version && h == head) {
            Some((_, _, whole)) => whole.clone(),
            None => {
                let whole = self.build(version, head);
                if complete.len() < CACHED_HEADS {
                    complete.push((version, head.clone(), whole.clone()));
                }
                whole
            }
        }
    }

    /// The whole frame for `head`, in one buffer. The shared headers are encoded straight
    /// into it the first time (most messages have one head, so they are never needed apart),
    /// and copied from [`shared_part`](Self::shared_part) after that.
    fn build(&self, version: Version, head: &Bytes) -> Bytes {
        let body = &self.body;
        let nothing_built = self.made_with.is_none()
            && self.later.get().is_none_or(|later| {
                later.first.get().is_none() && later.shared_slot(version).get().is_none()
            });
        let mut out = if nothing_built {
            let capacity = head.len() + self.shared_capacity() + body.len() + 1;
            if capacity <= small::LARGEST {
                return small::frame(|out| {
                    out.put_slice(head);
                    self.encode_shared(out, Escaping::for_frame(version, true));
                    put_all(out, [body, b"\0"]);
                });
            }
            let mut out = BytesMut::with_capacity(capacity);
            out.put_slice(head);
            self.encode_shared(&mut out, Escaping::for_frame(version, true));
            out
        } else {
            let shared = self.shared_part(version);
            let mut out = BytesMut::with_capacity(head.len() + shared.len() + body.len() + 1);
            out.put_slice(head);
            out.put_slice(shared);
            out
        };
        out.put_slice(body);
        out.put_u8(0);
        out.freeze()
    }
}

/// Small frames in one allocation each.
///
/// A frame built into a `BytesMut` of its own and frozen takes two allocations: its buffer,
/// and the reference count `Bytes` keeps beside it (a `BytesMut` frozen with room to spare
/// cannot become a bare boxed slice). A frame of up to [`LARGEST`] bytes is built in a
/// reusable per-thread buffer and copied into a fixed-size array that
/// [`Bytes::from_owner`] stores together with the reference count: one allocation, one
/// copy of a few hundred bytes (about a third of an allocation and its free).
mod small {
    use std::cell::RefCell;
    use std::mem::MaybeUninit;

    use bytes::{Bytes, BytesMut};

    use crate::ring::Ring;
    use crate::stomp::put_uninit;

    /// The largest frame built this way: its allocation (the array, its length and the
    /// reference count) is 1,024 bytes.
    pub(super) const LARGEST: usize = 1024 - 16;

    /// A frame's bytes, the first `len` of `bytes`.
    struct Inline<const N: usize> {
        len: usize,
        bytes: [MaybeUninit<u8>; N],
    }

    impl<const N: usize> AsRef<[u8]> for Inline<N> {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: `bytes` wrote the first `len` bytes (`len <= N`), and `MaybeUninit<u8>`
            // has the layout of `u8`.
            unsafe { std::slice::from_raw_parts(self.bytes.as_ptr().cast::<u8>(), self.len) }
        }
    }

    impl<const N: usize> Inline<N> {
        /// `bytes` (at most `N`) in one allocation with `Bytes`'s reference count.
        fn bytes(bytes: &[u8]) -> Bytes {
            debug_assert!(bytes.len() <= N);
            let mut inline = Inline { len: bytes.len(), bytes: [MaybeUninit::uninit(); N] };
            put_uninit(&mut inline.bytes, bytes);
            Bytes::from_owner(inline)
        }
    }

    thread_local! {
        /// Where frames are built before they are copied into their own allocation.
        static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(LARGEST));
        /// The last frames built on this thread, one reference each (see [`keep_recent`]).
        static RECENT: RefCell<Recent> = const {
            RefCell::new(Recent { frames: Ring::new(), bytes: 0 })
        };
    }

    /// Frames kept by the thread that built them, and their bytes. A `Ring`, whose push moves
    /// the clone in words (see `ring::write_in_words`: a `VecDeque`'s copy of it waited on a
    /// failed store forward at every frame built).
    struct Recent {
        frames: Ring<Bytes>,
        bytes: usize,
    }

    /// The most frames a thread keeps a reference to after building them...
    pub(super) const RECENT_KEPT: usize = 256;
    /// ...and the most bytes of frames they may hold (each frame's allocation is up to 127
    /// bytes larger than the frame: up to about 85 KiB of memory for small frames).
    pub(super) const RECENT_BYTES: usize = 64 * 1024;

    /// Keeps a reference to `frame`, built on this thread, dropping those to the oldest frames
    /// kept beyond [`RECENT_KEPT`] frames or [`RECENT_BYTES`] bytes. A publisher's read turn
    /// builds a burst of frames (one per SEND, up to a hundred) that all live until its
    /// subscribers' sessions have written them, then are freed in a burst, sometimes on another
    /// worker thread: glibc's per-thread cache holds seven blocks of a size, so most of a burst
    /// went through the allocator's slow paths both ways (~380 instructions a frame, against
    /// ~140). With this last reference, a busy publisher's thread frees about one frame (built
    /// a burst earlier, and by then written) for each one it builds, and the next build takes
    /// the block back from the cache. A quiet thread holds these frames until it builds again.
    fn keep_recent(frame: &Bytes) {
        let _ = RECENT.try_with(|recent| {
            if let Ok(mut recent) = recent.try_borrow_mut() {
                let recent = &mut *recent;
                if recent.frames.capacity() == 0 {
                    recent.frames.reserve_exact(RECENT_KEPT + 1);
                }
                recent.bytes += frame.len();
                recent.frames.push_back(frame.clone());
                while recent.frames.len() > RECENT_KEPT || recent.bytes > RECENT_BYTES {
                    match recent.frames.pop_front() {
                        Some(old) => recent.bytes -= old.len(),
                        None => break,
                    }
                }
            }
        });
    }

    /// How many frames this thread keeps, and their bytes (tests).
    #[cfg(test)]
    pub(super) fn recent() -> (usize, usize) {
        RECENT.with(|recent| {
            let recent = recent.borrow();
            (recent.frames.len(), recent.bytes)
        })
    }

    /// The frame `build` writes, in one allocation when it is at most [`LARGEST`] bytes (it
    /// may be larger when escaping lengthened its headers: then in a buffer of its own).
    pub(super) fn frame(build: impl FnOnce(&mut BytesMut)) -> Bytes {
        let mut build = Some(build);
        let built = SCRATCH.try_with(|scratch| {
            // A frame built while another is (a re-entrant encoder: none today) gets a
            // buffer of its own, below.
            let mut out = scratch.try_borrow_mut().ok()?;
            let build = build.take()?;
            out.clear();
            build(&mut out);
            let frame = inline(&out);
            // A frame that escaping made large leaves no large buffer behind.
            if out.capacity() > LARGEST * 2 {
                *out = BytesMut::with_capacity(LARGEST);
            }
            Some(frame)
        });
        if let Ok(Some(frame)) = built {
            keep_recent(&frame);
            return frame;
        }
        // No scratch buffer (borrowed, or the thread is ending): a buffer of its own. (`build`
        // is still here: it is taken only where its frame is returned.)
        let mut out = BytesMut::new();
        if let Some(build) = build {
            build(&mut out);
        }
        out.freeze()
    }

    /// `bytes` in one allocation of a size class. The classes go up by 64 bytes to 512 and by
    /// 128 to 1,024 (allocations of `N + 16`: the length and the reference count), so a frame
    /// takes at most 127 bytes more than its length, about what a buffer of its own and a
    /// separate reference count took (glibc rounds each allocation to 16 bytes and adds its
    /// own 8 to 16). Longer ones: a buffer of their own.
    fn inline(bytes: &[u8]) -> Bytes {
        macro_rules! classes {
            ($($n:literal),*) => {
                match bytes.len() {
                    $(len if len <= $n - 16 => Inline::<{ $n - 16 }>::bytes(bytes),)*
                    _ => Bytes::copy_from_slice(bytes),
                }
            };
        }
        classes!(128, 192, 256, 320, 384, 448, 512, 640, 768, 896, 1024)
    }
}

/// Whether two subscription heads are the same: the same buffer (subscriptions share their
/// heads where they can), or equal bytes.
#[inline]
fn same_head(a: &Bytes, b: &Bytes) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// Encodes `MESSAGE\n` and the per-delivery headers of a subscriber for
/// [`PreparedMessage::with_head`]. A subscription encodes its head once and reuses it for every
/// message it receives.
pub fn message_head(version: Version, per_delivery: &[(&str, &str)]) -> Bytes {
    let escaping = Escaping::for_frame(version, true);
    let size = 8 + per_delivery.iter().map(|(n, v)| n.len() + v.len() + 2).sum::<usize>();
    let mut head = BytesMut::with_capacity(size);
    head.put_slice(b"MESSAGE\n");
    for (name, value) in per_delivery {
        write_header(&mut head, name.as_bytes(), value.as_bytes(), escaping);
    }
    debug_assert_no_nul(&head);
    head.freeze()
}

/// The invariant every encoded head keeps: no NUL, which would end the frame early for the
/// peer (`escape_into` writes a NUL in header text as U+FFFD).
fn debug_assert_no_nul(head: &[u8]) {
    debug_assert!(
        memchr::memchr(0, head).is_none(),
        "an encoded command or header contains a NUL: {head:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_frame_is_words_with_no_padding() {
        // A queued frame is moved a word at a time (`ring::write_in_words`): a field smaller
        // than a word would put a byte store and padding under one of those word loads, and
        // each delivery would wait on it again (see `Utf8`). Such a field adds padding, so the
        // fields would no longer add up to the frame.
        use std::mem::size_of;
        assert_eq!(size_of::<Utf8>(), 8);
        let fields = size_of::<Bytes>() + size_of::<Option<Box<Bytes>>>() + size_of::<Utf8>();
        assert_eq!(size_of::<EncodedFrame>(), fields, "padding in EncodedFrame");
        assert_eq!(size_of::<EncodedFrame>() % 8, 0);
    }

    /// The headers of a SEND with `lines`, as the decoder reads them.
    fn decoded(lines: &str) -> Headers {
        let mut buf = BytesMut::from(format!("SEND\n{lines}\n\0").as_bytes());
        let frame =
            crate::stomp::Decoder::default().decode(&mut buf).expect("valid").expect("whole");
        frame.headers
    }

    #[test]
    fn received_lines_are_copied_only_when_no_escaping_changes_them_whether_templated_or_not() {
        // (lines, whether they are copied as they are): a second ':' or a '\r' anywhere but
        // before a line's '\n' needs escaping in some version.
        let cases = [
            ("destination:/topic/a\ncontent-type:text/plain\nx-\u{e9}:\u{20ac} v\n", true),
            ("destination:/topic/a\r\nx:1\r\n", true),
            ("destination:/topic/a\ncontent-length:0\nx:1\n", true),
            ("content-length:0\ndestination:/topic/a\n", true),
            ("destination:/topic/a\nx:1:2\n", false),
            ("destination:/topic/a\ny:a\rb\n", false),
            ("destination:/topic/a\ny:ab\r\r\n", false),
        ];
        for (lines, verbatim) in cases {
            let raw = decoded(lines);
            assert!(raw.raw_lines().is_some(), "{lines:?} kept as lines");
            assert_eq!(raw.is_verbatim(), verbatim, "{lines:?}");
            let built: Headers = raw.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
            assert!(!built.is_verbatim());
            for id in [None, Some(7)] {
                let message = |headers: &Headers| {
                    let message =
                        PreparedMessage::new(headers.clone(), Bytes::from_static(b"body"));
                    match id {
                        Some(id) => message.with_message_id(id),
                        None => message,
                    }
                };
                let (from_raw, from_built) = (message(&raw), message(&built));
                // Two messages of one template (its lines encoded once only when no version
                // changes them), each with its own body.
                let template = Arc::new(MessageTemplate::new(&raw));
                assert_eq!(template.encoded.is_some(), verbatim, "{lines:?}");
                let templated = |body: &'static [u8]| {
                    let message =
                        PreparedMessage::from_template(template.clone(), Bytes::from(body), false);
                    match id {
                        Some(id) => message.with_message_id(id),
                        None => message,
                    }
                };
                let (from_template, longer) = (templated(b"body"), templated(b"a longer body"));
                assert_eq!(from_template.headers(), &raw);
                assert_eq!(from_template.headers_text_len(), raw.text_len());
                for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
                    let head = message_head(version, &[("subscription", "s")]);
                    let frame = |m: &PreparedMessage| m.contiguous_for(version, &head).to_bytes();
                    let context = format!("{lines:?} {id:?} {version:?}");
                    assert_eq!(frame(&from_raw), frame(&from_built), "{context}");
                    assert_eq!(frame(&from_template), frame(&from_built), "{context}");
                    assert_eq!(
                        from_raw.shared_part(version),
                        from_built.shared_part(version),
                        "{context}"
                    );
                    assert_eq!(
                        from_template.shared_part(version),
                        from_built.shared_part(version),
                        "{context}"
                    );
                    let mut expected = PreparedMessage::new(built.clone(), "a longer body".into());
                    if let Some(id) = id {
                        expected = expected.with_message_id(id);
                    }
                    assert_eq!(frame(&longer), frame(&expected), "{context}");
                }
            }
        }
    }

    #[test]
    fn frames_of_every_size_class_are_built_alike() {
        // Around each small-frame class's limit and past the largest, with and without a header
        // that escaping lengthens (past the largest class, from an estimate under it).
        let sizes = [0, 1, 100, 150, 200, 239, 240, 241, 480, 500, 900, 990, 1000, 1010, 4000];
        for len in sizes {
            for escaped in [false, true] {
                let mut headers = Headers::new();
                headers.push("destination", "/topic/t");
                if escaped {
                    headers.push("note", "a:b\nc".repeat(60));
                }
                let body = Bytes::from(vec![b'x'; len]);
                let message = PreparedMessage::new(headers, body);
                let head = message_head(Version::V1_2, &[("subscription", "sub-0")]);
                let built = message.contiguous_for(Version::V1_2, &head).to_bytes();
                let expected = message.for_subscriber(Version::V1_2, &[("subscription", "sub-0")]);
                assert_eq!(built, expected.to_bytes(), "body of {len} bytes, escaped: {escaped}");
                // The same frame again: shared, not built twice.
                let again = message.contiguous_for(Version::V1_2, &head).to_bytes();
                assert_eq!(again.as_ptr(), built.as_ptr());
            }
        }
    }

    #[test]
    fn every_length_keeps_its_bytes_whatever_its_class() {
        let source: Vec<u8> = (0..1100u32).map(|i| (i % 251) as u8).collect();
        for len in 0..=source.len() {
            let frame = small::frame(|out| out.put_slice(&source[..len]));
            assert_eq!(&frame[..], &source[..len], "{len} bytes");
        }
    }

    #[test]
    fn a_thread_keeps_only_its_last_frames() {
        // On a thread of its own, so that no other test's frames count.
        std::thread::spawn(|| {
            assert_eq!(small::recent(), (0, 0));
            let first = small::frame(|out| out.put_slice(b"MESSAGE\n\nfirst\0"));
            assert_eq!(small::recent(), (1, first.len()));
            // Small frames: as many as the count allows.
            let mut bytes = Vec::new();
            for i in 0..small::RECENT_KEPT * 2 {
                let text = format!("MESSAGE\n\n{i:04}\0");
                let frame = small::frame(|out| out.put_slice(text.as_bytes()));
                assert_eq!(&frame[..], text.as_bytes());
                bytes.push(frame.len());
                assert!(small::recent().0 <= small::RECENT_KEPT);
            }
            let last: usize = bytes[bytes.len() - small::RECENT_KEPT..].iter().sum();
            assert_eq!(small::recent(), (small::RECENT_KEPT, last));
            // Large frames: as many as the bytes allow.
            let large = vec![b'x'; 900];
            for _ in 0..small::RECENT_KEPT {
                small::frame(|out| out.put_slice(&large));
                let (count, held) = small::recent();
                assert!(held <= small::RECENT_BYTES && count <= small::RECENT_KEPT);
            }
            assert_eq!(small::recent().0, small::RECENT_BYTES / 900);
            // A frame the thread no longer keeps is intact for those who still hold it.
            assert_eq!(&first[..], b"MESSAGE\n\nfirst\0");
        })
        .join()
        .expect("the test thread");
    }

    #[test]
    fn a_small_frame_outlives_the_thread_that_built_it() {
        let frame = std::thread::spawn(|| small::frame(|out| out.put_slice(b"MESSAGE\n\n\0")))
            .join()
            .expect("the builder thread");
        let copy = frame.clone();
        drop(frame);
        assert_eq!(&copy[..], b"MESSAGE\n\n\0");
    }
}
