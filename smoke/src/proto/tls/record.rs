//! The TLS 1.3 record layer once the handshake is done (RFC 8446 §5): records opened where they
//! lie in the input and sealed straight into the output, with ring's AEADs under the traffic
//! keys rustls negotiated. rustls's own record layer copies every record into a fresh `Vec`
//! each way; this one allocates nothing.

use ring::aead::{self, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;

/// A record's header: content type, legacy version, length.
pub(crate) const HEADER_LEN: usize = 5;
/// The AEAD tag of every suite TLS 1.3 defines here (AES-GCM, ChaCha20-Poly1305).
pub(crate) const TAG_LEN: usize = 16;
/// The most plaintext one record carries.
pub(crate) const MAX_FRAGMENT: usize = 1 << 14;
/// The most an encrypted record's body may be: the fragment, its content type, padding, tag.
const MAX_CIPHERTEXT: usize = MAX_FRAGMENT + 256;
/// What sealing adds to each record: header, inner content type, tag.
pub(crate) const RECORD_OVERHEAD: usize = HEADER_LEN + 1 + TAG_LEN;

/// TLS content types (RFC 8446 §B.1).
pub(crate) mod content {
    pub(crate) const ALERT: u8 = 21;
    pub(crate) const HANDSHAKE: u8 = 22;
    pub(crate) const APPLICATION_DATA: u8 = 23;
}

/// Why a record could not be opened: the connection cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// Not an encrypted TLS 1.3 record, or longer than the protocol allows.
    Malformed,
    /// The tag did not verify: tampered with, replayed or under another key.
    BadRecordMac,
}

/// One direction's key, IV and sequence number.
pub(crate) struct Direction {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
}

impl std::fmt::Debug for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direction").field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl Direction {
    /// The direction rustls handed over, at its sequence number.
    pub(crate) fn new(seq: u64, secrets: &ConnectionTrafficSecrets) -> Option<Direction> {
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, key, iv),
            _ => return None,
        };
        let key = LessSafeKey::new(UnboundKey::new(algorithm, key.as_ref()).ok()?);
        Some(Direction { key, iv: iv.as_ref().try_into().ok()?, seq })
    }

    /// Records sealed (or opened) under this key so far.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The per-record nonce: the IV with the sequence number folded into its last 8 bytes.
    fn next_nonce(&mut self) -> Nonce {
        let mut nonce = self.iv;
        for (byte, seq) in nonce[NONCE_LEN - 8..].iter_mut().zip(self.seq.to_be_bytes()) {
            *byte ^= seq;
        }
        self.seq += 1;
        Nonce::assume_unique_for_key(nonce)
    }

    /// Seals `plaintext` as records of content type `inner`, appended to `out`.
    pub(crate) fn seal(&mut self, plaintext: &[u8], inner: u8, out: &mut Vec<u8>) {
        let records = plaintext.len().div_ceil(MAX_FRAGMENT).max(1);
        out.reserve(plaintext.len() + records * RECORD_OVERHEAD);
        let mut chunks = plaintext.chunks(MAX_FRAGMENT);
        for _ in 0..records {
            let chunk = chunks.next().unwrap_or_default();
            let length = (chunk.len() + 1 + TAG_LEN) as u16;
            let header = [content::APPLICATION_DATA, 3, 3, (length >> 8) as u8, length as u8];
            out.extend_from_slice(&header);
            let body = out.len();
            out.extend_from_slice(chunk);
            out.push(inner);
            let nonce = self.next_nonce();
            // Sealing fails only for inputs beyond the AEAD's limits, far above a record.
            let tag = self
                .key
                .seal_in_place_separate_tag(nonce, Aad::from(header), &mut out[body..])
                .expect("a TLS record is within the AEAD's limits");
            out.extend_from_slice(tag.as_ref());
        }
    }

    /// Opens the record at the start of `input`, in place: `Ok(None)` until all of it has
    /// arrived; otherwise its length on the wire, its inner content type and where its
    /// plaintext now lies in `input`.
    pub(crate) fn open(&mut self, input: &mut [u8]) -> Result<Option<Opened>, RecordError> {
        let Some(header) = input.get(..HEADER_LEN) else { return Ok(None) };
        let header: [u8; HEADER_LEN] = header.try_into().map_err(|_| RecordError::Malformed)?;
        let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[0] != content::APPLICATION_DATA || header[1] != 3 || !(TAG_LEN + 1..=MAX_CIPHERTEXT).contains(&length)
        {
            return Err(RecordError::Malformed);
        }
        let Some(body) = input.get_mut(HEADER_LEN..HEADER_LEN + length) else { return Ok(None) };
        let nonce = self.next_nonce();
        let plaintext =
            self.key.open_in_place(nonce, Aad::from(header), body).map_err(|_| RecordError::BadRecordMac)?;
        // The inner plaintext ends with its content type, then zero padding.
        let Some(end) = plaintext.iter().rposition(|&b| b != 0) else { return Err(RecordError::Malformed) };
        if end > MAX_FRAGMENT {
            return Err(RecordError::Malformed);
        }
        Ok(Some(Opened {
            wire_len: HEADER_LEN + length,
            inner: plaintext[end],
            plaintext: HEADER_LEN..HEADER_LEN + end,
        }))
    }
}

/// A record opened in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Opened {
    /// Its length on the wire: what to step over to reach the next record.
    pub(crate) wire_len: usize,
    /// Its content type inside the encryption.
    pub(crate) inner: u8,
    /// Where its plaintext lies in the input it was opened in.
    pub(crate) plaintext: std::ops::Range<usize>,
}

#[cfg(test)]
mod tests {
    use rustls::crypto::cipher::{AeadKey, Iv};

    use super::*;

    fn pair() -> (Direction, Direction) {
        let secrets = || ConnectionTrafficSecrets::Chacha20Poly1305 {
            key: AeadKey::from([7u8; 32]),
            iv: Iv::from([9u8; NONCE_LEN]),
        };
        (Direction::new(5, &secrets()).unwrap(), Direction::new(5, &secrets()).unwrap())
    }

    #[test]
    fn records_round_trip_in_place_across_fragments() {
        let (mut tx, mut rx) = pair();
        let message: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        tx.seal(&message, content::APPLICATION_DATA, &mut wire);
        assert_eq!(wire.len(), message.len() + 3 * RECORD_OVERHEAD, "three records");
        let mut received = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            assert_eq!(rx.open(&mut wire[at..at + 3]), Ok(None), "a partial record waits");
            let opened = rx.open(&mut wire[at..]).unwrap().unwrap();
            assert_eq!(opened.inner, content::APPLICATION_DATA);
            received.extend_from_slice(&wire[at..][opened.plaintext.clone()]);
            at += opened.wire_len;
        }
        assert_eq!(received, message);
        assert_eq!((tx.seq(), rx.seq()), (8, 8));
    }

    #[test]
    fn a_tampered_or_replayed_record_does_not_open() {
        let (mut tx, mut rx) = pair();
        let mut wire = Vec::new();
        tx.seal(b"hello", content::APPLICATION_DATA, &mut wire);
        let mut tampered = wire.clone();
        tampered[HEADER_LEN + 1] ^= 1;
        assert_eq!(rx.open(&mut tampered), Err(RecordError::BadRecordMac));
        // The receiver moved on to the next sequence number: the original, replayed, fails too.
        assert_eq!(rx.open(&mut wire), Err(RecordError::BadRecordMac));
        assert_eq!(rx.open(&mut [22, 3, 3, 0, 20]), Err(RecordError::Malformed), "a plaintext record");
    }
}
