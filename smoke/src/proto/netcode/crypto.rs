//! The two AEADs netcode seals with, in place over smoke's buffers: ChaCha20-Poly1305 with a
//! nonce made from a sequence number (packets, challenge tokens), and XChaCha20-Poly1305 with a
//! random 24-byte nonce (the private connect token). Each sealed part ends with its 16-byte tag.

use super::{Key, MAC_BYTES};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Tag, XChaCha20Poly1305};

/// Seals `data` (the tag's room included, at its end) in place with ChaCha20-Poly1305, the nonce
/// built from `sequence`: packets and the challenge token.
pub(crate) fn seal_with_sequence(data: &mut [u8], sequence: u64, key: &Key, associated: &[u8]) {
    let (body, tag_room) = data.split_at_mut(data.len() - MAC_BYTES);
    let cipher = ChaCha20Poly1305::new(key.into());
    let tag = cipher.encrypt_in_place_detached(&nonce(sequence), associated, body).expect("body fits");
    tag_room.copy_from_slice(&tag);
}

/// Opens what [`seal_with_sequence`] sealed, in place; false when the tag does not verify.
pub(crate) fn open_with_sequence(data: &mut [u8], sequence: u64, key: &Key, associated: &[u8]) -> bool {
    let (body, tag) = data.split_at_mut(data.len() - MAC_BYTES);
    let cipher = ChaCha20Poly1305::new(key.into());
    cipher.decrypt_in_place_detached(&nonce(sequence), associated, body, Tag::from_slice(tag)).is_ok()
}

/// Seals `data` (tag room at its end) with XChaCha20-Poly1305 and a random 24-byte nonce: the
/// private connect token, whose nonce no counter could keep unique across a fleet of backends.
pub(crate) fn seal_with_nonce(data: &mut [u8], nonce: &[u8; 24], key: &Key, associated: &[u8]) {
    let (body, tag_room) = data.split_at_mut(data.len() - MAC_BYTES);
    let cipher = XChaCha20Poly1305::new(key.into());
    let tag = cipher.encrypt_in_place_detached(nonce.into(), associated, body).expect("body fits");
    tag_room.copy_from_slice(&tag);
}

/// Opens what [`seal_with_nonce`] sealed, in place; false when the tag does not verify.
pub(crate) fn open_with_nonce(data: &mut [u8], nonce: &[u8; 24], key: &Key, associated: &[u8]) -> bool {
    let (body, tag) = data.split_at_mut(data.len() - MAC_BYTES);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher.decrypt_in_place_detached(nonce.into(), associated, body, Tag::from_slice(tag)).is_ok()
}

/// The 96-bit nonce of a sequence number: four zero bytes, then the sequence little-endian.
fn nonce(sequence: u64) -> chacha20poly1305::Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&sequence.to_le_bytes());
    nonce.into()
}
