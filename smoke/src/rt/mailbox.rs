//! A worker's mailbox: the topic publications other threads (and its own handlers) left for
//! its subscribers, packed so a steady stream of publications allocates nothing.

/// Publications waiting for one worker, packed into two reused vectors so a steady stream of
/// publications allocates nothing: the worker swaps the mailbox with an empty one it keeps.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    bytes: Vec<u8>,
    /// (topic length, frame length) of each publication, in order; both lie in `bytes`.
    letters: Vec<(u32, u32)>,
}

impl Mailbox {
    pub(crate) fn push(&mut self, topic: &str, frame: &[&[u8]]) {
        self.bytes.extend_from_slice(topic.as_bytes());
        let mut frame_len = 0;
        for part in frame {
            self.bytes.extend_from_slice(part);
            frame_len += part.len();
        }
        self.letters.push((topic.len() as u32, frame_len as u32));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.letters.clear();
    }

    /// Each publication as (topic, encoded frame), in publish order.
    pub(crate) fn letters(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut at = 0;
        self.letters.iter().map(move |&(topic_len, frame_len)| {
            let topic = &self.bytes[at..at + topic_len as usize];
            let frame = &self.bytes[at + topic_len as usize..at + (topic_len + frame_len) as usize];
            at += (topic_len + frame_len) as usize;
            // Pushed from a &str.
            (std::str::from_utf8(topic).unwrap_or_default(), frame)
        })
    }
}
