//! The two AEADs netcode seals with, in place over smoke's buffers: ChaCha20-Poly1305 with a
//! nonce made from a sequence number (every packet, and the challenge token), and
//! XChaCha20-Poly1305 with a random 24-byte nonce (the private connect token). Each sealed part
//! ends with its 16-byte tag.
//!
//! Packets go through ring's ChaCha20-Poly1305 (rustls's backend already): its assembly sets up a
//! small packet's Poly1305 in a fraction of what the RustCrypto crate's AVX2 backend spends
//! before its first block, which was a quarter of the game echo's instructions. XChaCha20, which
//! ring lacks, stays with RustCrypto: one token a connection.

use super::{Key, MAC_BYTES};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

/// Seals `data` (the tag's room included, at its end) in place with ChaCha20-Poly1305, the nonce
/// built from `sequence`: packets and the challenge token.
pub(crate) fn seal_with_sequence(data: &mut [u8], sequence: u64, key: &Key, associated: &[u8]) {
    let (body, tag_room) = data.split_at_mut(data.len() - MAC_BYTES);
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key"));
    // Sealing fails only for a body longer than ChaCha20's 256 GiB counter space.
    let tag = key.seal_in_place_separate_tag(nonce(sequence), Aad::from(associated), body).expect("body fits");
    tag_room.copy_from_slice(tag.as_ref());
}

/// Opens what [`seal_with_sequence`] sealed, in place; false when the tag does not verify.
pub(crate) fn open_with_sequence(data: &mut [u8], sequence: u64, key: &Key, associated: &[u8]) -> bool {
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key"));
    key.open_in_place(nonce(sequence), Aad::from(associated), data).is_ok()
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
fn nonce(sequence: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&sequence.to_le_bytes());
    Nonce::assume_unique_for_key(nonce)
}
