//! What a message looks like on the bus: a 13-byte header, then the
//! payload.
//!
//! ```text
//! "uWS" 0x01   magic and version
//! flags        1: binary (else text), 2: compress, 4: the topic follows
//! id           the publishing server's id, 8 bytes little-endian
//! [len topic]  with flag 4: the topic's length (4 bytes LE) and bytes
//! payload
//! ```
//!
//! Anything else on a topic's channel comes from another program and is
//! delivered as it is: text when it is UTF-8, binary otherwise.

// Only the bridge reads messages; a build without a bus feature has none.
#![cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]

/// Magic and version.
const MAGIC: [u8; 4] = *b"uWS\x01";
/// Bytes before the payload (without a topic).
pub(crate) const HEADER: usize = 13;

const BINARY: u8 = 1;
const COMPRESS: u8 = 2;
const TOPIC: u8 = 4;

/// Appends the header of a message of server `id` to `out`.
pub(crate) fn write_header(out: &mut Vec<u8>, id: u64, binary: bool, compress: bool) {
    out.extend_from_slice(&MAGIC);
    let mut flags = 0;
    if binary {
        flags |= BINARY;
    }
    if compress {
        flags |= COMPRESS;
    }
    out.push(flags);
    out.extend_from_slice(&id.to_le_bytes());
}

/// A message from the bus, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    /// The publishing server, `None` for another program's message.
    pub(crate) id: Option<u64>,
    pub(crate) binary: bool,
    pub(crate) compress: bool,
    /// The topic, when the message carries it.
    pub(crate) topic: Option<&'a [u8]>,
    pub(crate) payload: &'a [u8],
}

/// Reads a message from the bus.
pub(crate) fn read(bytes: &[u8]) -> Envelope<'_> {
    ours(bytes).unwrap_or_else(|| Envelope {
        id: None,
        binary: std::str::from_utf8(bytes).is_err(),
        compress: false,
        topic: None,
        payload: bytes,
    })
}

fn ours(bytes: &[u8]) -> Option<Envelope<'_>> {
    let rest = bytes.strip_prefix(&MAGIC)?;
    let (&flags, rest) = rest.split_first()?;
    let (id, mut rest) = rest.split_first_chunk::<8>()?;
    let topic = if flags & TOPIC != 0 {
        let (len, after) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if after.len() < len {
            return None;
        }
        let (topic, after) = after.split_at(len);
        rest = after;
        Some(topic)
    } else {
        None
    };
    Some(Envelope {
        id: Some(u64::from_le_bytes(*id)),
        binary: flags & BINARY != 0,
        compress: flags & COMPRESS != 0,
        topic,
        payload: rest,
    })
}

/// `message` (one of ours, without a topic) with `topic` added.
#[cfg_attr(not(feature = "nats"), allow(dead_code))] // only NATS carries topics
pub(crate) fn with_topic(message: &[u8], topic: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 4 + topic.len());
    out.extend_from_slice(&message[..HEADER]);
    out[MAGIC.len()] |= TOPIC;
    out.extend_from_slice(&(topic.len() as u32).to_le_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(&message[HEADER..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, binary: bool, compress: bool, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        write_header(&mut m, id, binary, compress);
        assert_eq!(m.len(), HEADER);
        m.extend_from_slice(payload);
        m
    }

    #[test]
    fn round_trips_keep_kind_compress_and_id() {
        for (binary, compress) in [(false, false), (true, false), (false, true), (true, true)] {
            let m = message(0xdead_beef_0123, binary, compress, b"hello");
            assert_eq!(
                read(&m),
                Envelope {
                    id: Some(0xdead_beef_0123),
                    binary,
                    compress,
                    topic: None,
                    payload: b"hello",
                }
            );
        }
        let empty = message(7, true, false, b"");
        assert_eq!(read(&empty).payload, b"");
    }

    #[test]
    fn topics_travel_inside_when_asked() {
        let m = with_topic(&message(9, false, true, b"body"), b"a very long topic");
        let e = read(&m);
        assert_eq!(e.id, Some(9));
        assert!(e.compress && !e.binary);
        assert_eq!(e.topic, Some(&b"a very long topic"[..]));
        assert_eq!(e.payload, b"body");
    }

    #[test]
    fn other_programs_messages_pass_as_they_are() {
        let e = read(b"plain hello");
        assert_eq!((e.id, e.binary, e.compress), (None, false, false));
        assert_eq!(e.payload, b"plain hello");
        assert!(read(&[0xff, 0xfe, 0]).binary);
        // Our magic but cut short, or a topic longer than the message.
        assert_eq!(read(b"uWS\x01\x00abc").id, None);
        let mut cut = with_topic(&message(1, false, false, b""), b"topic");
        cut.truncate(cut.len() - 1);
        assert_eq!(read(&cut).id, None);
    }
}
