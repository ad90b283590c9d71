//! The encryption vault: XChaCha20-Poly1305 sealing of stored secrets, keyed by an
//! operator-supplied key, with key ids so old ciphertexts survive a key rotation.
//!
//! A sealed blob is `"{key_id}:" || nonce (24 bytes) || ciphertext || tag (16 bytes)`.
//! The key id names the key that sealed it; the associated data (aad) binds it to
//! its row and purpose, e.g. `b"connection:42:credentials"`, so a ciphertext copied
//! into another row fails to open.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{AeadInOut, Generate};
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::secret::{Secret, SecretString, SecretVec};

/// Length of an [`EncryptionKey`] in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the random nonce stored in every blob.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 authentication tag at the end of every blob.
pub const TAG_LEN: usize = 16;
/// Length of a [`KeyId`] in characters (hex).
pub const KEY_ID_LEN: usize = 8;

const PREFIX_LEN: usize = KEY_ID_LEN + 1;
const KEY_ID_DOMAIN: &[u8] = b"ferry/vault/key-id/v1\0";
const FINGERPRINT_DOMAIN: &[u8] = b"ferry/vault/key-fingerprint/v1\0";

/// Why a key could not be read or made. Never carries any part of the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key text was empty or only whitespace.
    #[error(
        "the encryption key is empty; generate one with `ferry dev` or `openssl rand -base64 32`"
    )]
    Empty,
    /// The key text is hex or base64, but does not encode 32 bytes.
    #[error("the encryption key is {chars} characters long; a 32-byte key is 64 hex characters or 43-44 base64 characters")]
    WrongLength {
        /// How many characters the key text has (after trimming whitespace).
        chars: usize,
    },
    /// The key text is neither base64 nor 64 hex characters.
    #[error("the encryption key is neither base64 nor 64 hex characters; it must encode 32 bytes")]
    InvalidEncoding,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator is unavailable")]
    RandomnessUnavailable,
}

/// Why the vault could not seal or open a blob. Never carries key or plaintext material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The blob is too short or lacks the `"{key_id}:"` prefix, so it was not made by a vault.
    #[error("the encrypted value is malformed")]
    Malformed,
    /// The blob was sealed by a key that is neither the current nor a previous key.
    #[error("the encrypted value was sealed with key {key_id}, which is not configured; add it to the previous keys")]
    UnknownKeyId {
        /// The key id found in the blob's prefix.
        key_id: KeyId,
    },
    /// The tag did not verify: the bytes were changed, or the aad differs from the one used
    /// to seal (AEAD cannot tell these apart, by design).
    #[error(
        "the encrypted value failed authentication: it was altered or belongs to another record"
    )]
    AuthenticationFailed,
    /// The opened value was expected to be UTF-8 text and is not.
    #[error("the decrypted value is not valid UTF-8 text")]
    NotUtf8,
    /// Sealing failed: the operating system's randomness was unavailable or the plaintext
    /// is beyond the cipher's length limit.
    #[error("encryption failed")]
    EncryptionFailed,
}

/// A short, stable, non-secret name for a key: the first 8 hex characters of a
/// domain-separated SHA-256 of the key. It tells which key sealed a blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The id as 8 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        // Built only from lowercase hex digits, so always ASCII.
        std::str::from_utf8(&self.0).unwrap_or("????????")
    }

    fn from_prefix(bytes: &[u8]) -> Option<Self> {
        let id: [u8; KEY_ID_LEN] = bytes.try_into().ok()?;
        id.iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            .then_some(Self(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.as_str())
    }
}

/// A 256-bit vault key. Prints only its key id; the bytes are zeroized on drop.
#[derive(Clone)]
pub struct EncryptionKey {
    bytes: Secret<[u8; KEY_LEN]>,
}

impl EncryptionKey {
    /// Reads a key from base64 (standard or URL-safe, padded or not) or 64 hex
    /// characters; surrounding whitespace, such as a file's final newline, is ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return decode_hex_key(text).map(Self::from_bytes);
        }
        let wrong_length = KeyError::WrongLength {
            chars: text.chars().count(),
        };
        let Some(decoded) = decode_base64(text) else {
            // Hex of the wrong length is usually not valid base64; say what is wrong with it.
            return Err(if text.bytes().all(|b| b.is_ascii_hexdigit()) {
                wrong_length
            } else {
                KeyError::InvalidEncoding
            });
        };
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| wrong_length)?;
        Ok(Self::from_bytes(bytes))
    }

    /// Makes a new key from the operating system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let bytes = <[u8; KEY_LEN]>::try_generate().map_err(|_| KeyError::RandomnessUnavailable)?;
        Ok(Self::from_bytes(bytes))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            bytes: Secret::new(bytes),
        }
    }

    /// The key as padded standard base64, the form `ferry dev` writes into a key file.
    pub fn to_base64(&self) -> SecretString {
        SecretString::new(STANDARD.encode(self.bytes.expose_secret()))
    }

    /// The key's short id, written in front of every blob it seals.
    pub fn id(&self) -> KeyId {
        let digest = self.domain_hash(KEY_ID_DOMAIN);
        let mut id = [0u8; KEY_ID_LEN];
        for (i, byte) in digest.iter().take(KEY_ID_LEN / 2).enumerate() {
            id[2 * i] = HEX_DIGITS[usize::from(byte >> 4)];
            id[2 * i + 1] = HEX_DIGITS[usize::from(byte & 0x0f)];
        }
        KeyId(id)
    }

    /// A 64-hex-character fingerprint the server stores to notice a changed key at
    /// start-up. It is a one-way, domain-separated hash of a 256-bit random key, so it
    /// reveals nothing usable about the key.
    pub fn fingerprint(&self) -> String {
        hex_encode(&self.domain_hash(FINGERPRINT_DOMAIN))
    }

    fn domain_hash(&self, domain: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(domain);
        hasher.update(self.bytes.expose_secret());
        hasher.finalize().into()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.bytes.expose_secret().into())
    }
}

impl FromStr for EncryptionKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn hex_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0f])
        .map(|nibble| char::from(HEX_DIGITS[usize::from(nibble)]))
        .collect()
}

fn decode_hex_key(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    fn nibble(digit: u8) -> Option<u8> {
        char::from(digit)
            .to_digit(16)
            .and_then(|value| u8::try_from(value).ok())
    }
    let mut bytes = [0u8; KEY_LEN];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => *byte = (high << 4) | low,
            _ => {
                bytes.zeroize();
                return Err(KeyError::InvalidEncoding);
            }
        }
    }
    Ok(bytes)
}

/// Tries each base64 alphabet and padding style; the decoded bytes are wiped on drop.
fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .into_iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
}

/// One usable key: its id, fingerprint and a ready cipher (which zeroizes its key
/// schedule on drop).
struct VaultKey {
    id: KeyId,
    fingerprint: String,
    cipher: XChaCha20Poly1305,
}

impl VaultKey {
    fn new(key: &EncryptionKey) -> Self {
        Self {
            id: key.id(),
            fingerprint: key.fingerprint(),
            cipher: key.cipher(),
        }
    }
}

/// Seals secrets under the current key and opens blobs sealed under the current or any
/// previous key. Prints only key ids.
pub struct Vault {
    current: VaultKey,
    previous: Vec<VaultKey>,
}

impl Vault {
    /// Builds a vault that seals with `current` and can also open blobs sealed with any
    /// of `previous` (kept during a rotation until every blob is re-encrypted).
    pub fn new(current: EncryptionKey, previous: Vec<EncryptionKey>) -> Self {
        let current = VaultKey::new(&current);
        let mut kept: Vec<VaultKey> = Vec::with_capacity(previous.len());
        for key in previous.iter().map(VaultKey::new) {
            let listed = std::iter::once(&current)
                .chain(&kept)
                .any(|known| known.fingerprint == key.fingerprint);
            if !listed {
                kept.push(key);
            }
        }
        Self {
            current,
            previous: kept,
        }
    }

    /// The id of the key new blobs are sealed with.
    pub fn current_key_id(&self) -> KeyId {
        self.current.id
    }

    /// The current key's fingerprint, to compare with the one stored at first start.
    pub fn fingerprint(&self) -> &str {
        &self.current.fingerprint
    }

    /// Whether a stored fingerprint belongs to the current or a previous key. At start-up
    /// a server refuses to run when this is false (the key was changed without keeping
    /// the old one), and stores [`Vault::fingerprint`] when it is true.
    pub fn knows_fingerprint(&self, fingerprint: &str) -> bool {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|key| key.fingerprint == fingerprint)
    }

    /// Seals `plaintext` under the current key with a fresh random nonce, bound to `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        let nonce = XNonce::try_generate().map_err(|_| VaultError::EncryptionFailed)?;
        // Sized up front so the buffer never reallocates and leaves plaintext copies behind.
        let mut blob = Vec::with_capacity(PREFIX_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        blob.extend_from_slice(self.current.id.as_str().as_bytes());
        blob.push(b':');
        blob.extend_from_slice(&nonce);
        let body_start = blob.len();
        blob.extend_from_slice(plaintext);
        match self.current.cipher.encrypt_inout_detached(
            &nonce,
            aad,
            (&mut blob[body_start..]).into(),
        ) {
            Ok(tag) => {
                blob.extend_from_slice(&tag);
                Ok(blob)
            }
            Err(_) => {
                blob.zeroize();
                Err(VaultError::EncryptionFailed)
            }
        }
    }

    /// Opens a blob sealed by [`Vault::encrypt`] with the same `aad`, using the key its
    /// prefix names.
    pub fn decrypt(&self, blob: &[u8], aad: &[u8]) -> Result<SecretVec, VaultError> {
        self.decrypt_plain(blob, aad).map(Secret::new)
    }

    /// Seals UTF-8 text; see [`Vault::encrypt`].
    pub fn encrypt_str(&self, plaintext: &str, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.encrypt(plaintext.as_bytes(), aad)
    }

    /// Opens a blob that holds UTF-8 text; see [`Vault::decrypt`].
    pub fn decrypt_string(&self, blob: &[u8], aad: &[u8]) -> Result<SecretString, VaultError> {
        let plaintext = self.decrypt_plain(blob, aad)?;
        match String::from_utf8(plaintext) {
            Ok(text) => Ok(SecretString::new(text)),
            Err(error) => {
                error.into_bytes().zeroize();
                Err(VaultError::NotUtf8)
            }
        }
    }

    /// Whether the blob was sealed by a key other than the current one (or is not a
    /// vault blob at all), i.e. whether a rotation pass should re-encrypt it.
    pub fn needs_rotation(&self, blob: &[u8]) -> bool {
        blob.get(..PREFIX_LEN).and_then(parse_prefix) != Some(self.current.id)
    }

    /// Opens a blob with whichever configured key sealed it and seals it again under the
    /// current key, with a fresh nonce and the same `aad`.
    pub fn reencrypt(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        let plaintext = self.decrypt(blob, aad)?;
        self.encrypt(plaintext.expose_secret(), aad)
    }

    /// The plaintext as a bare `Vec`; callers wrap it at once.
    fn decrypt_plain(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
        if blob.len() < PREFIX_LEN + NONCE_LEN + TAG_LEN {
            return Err(VaultError::Malformed);
        }
        let (prefix, rest) = blob.split_at(PREFIX_LEN);
        let key_id = parse_prefix(prefix).ok_or(VaultError::Malformed)?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| VaultError::Malformed)?;
        let tag = Tag::try_from(tag).map_err(|_| VaultError::Malformed)?;

        // Two different keys could share a 32-bit id, so try every key that carries it:
        // the tag check tells the right one.
        let mut candidates = std::iter::once(&self.current)
            .chain(&self.previous)
            .filter(|key| key.id == key_id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(VaultError::UnknownKeyId { key_id });
        }
        for key in candidates {
            let mut buffer = ciphertext.to_vec();
            if key
                .cipher
                .decrypt_inout_detached(&nonce, aad, buffer.as_mut_slice().into(), &tag)
                .is_ok()
            {
                return Ok(buffer);
            }
        }
        Err(VaultError::AuthenticationFailed)
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("current_key_id", &self.current.id)
            .field(
                "previous_key_ids",
                &self.previous.iter().map(|key| key.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn parse_prefix(prefix: &[u8]) -> Option<KeyId> {
    match prefix.split_last() {
        Some((b':', id)) => KeyId::from_prefix(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: &[u8] = b"connection:42:credentials";

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes([byte; KEY_LEN])
    }

    fn vault_with(current: u8) -> Vault {
        Vault::new(key(current), Vec::new())
    }

    #[test]
    fn a_sealed_value_opens_with_the_same_key_and_aad() {
        let vault = vault_with(1);

        let blob = vault.encrypt(b"refresh-token", AAD).expect("seals");
        let opened = vault.decrypt(&blob, AAD).expect("opens");

        assert_eq!(opened.expose_secret().as_slice(), b"refresh-token");
    }

    #[test]
    fn an_empty_plaintext_round_trips() {
        let vault = vault_with(1);

        let blob = vault.encrypt(b"", AAD).expect("seals");

        assert_eq!(blob.len(), PREFIX_LEN + NONCE_LEN + TAG_LEN);
        assert!(vault
            .decrypt(&blob, AAD)
            .expect("opens")
            .expose_secret()
            .is_empty());
    }

    #[test]
    fn text_round_trips_through_encrypt_str_and_decrypt_string() {
        let vault = vault_with(1);

        let blob = vault.encrypt_str("pässwörd ✓", AAD).expect("seals");
        let opened = vault.decrypt_string(&blob, AAD).expect("opens");

        assert_eq!(opened.expose_secret(), "pässwörd ✓");
    }

    #[test]
    fn a_blob_starts_with_the_key_id_and_hides_the_plaintext() {
        let vault = vault_with(1);

        let blob = vault.encrypt(b"plaintext-marker", AAD).expect("seals");

        let expected_prefix = format!("{}:", key(1).id());
        assert!(blob.starts_with(expected_prefix.as_bytes()));
        assert!(!blob.windows(16).any(|window| window == b"plaintext-marker"));
    }

    #[test]
    fn sealing_the_same_value_twice_gives_different_blobs() {
        let vault = vault_with(1);

        let first = vault.encrypt(b"same", AAD).expect("seals");
        let second = vault.encrypt(b"same", AAD).expect("seals");

        assert_ne!(first, second);
    }

    #[test]
    fn a_different_key_with_the_same_id_prefix_fails_authentication() {
        let vault = vault_with(1);
        let blob = vault.encrypt(b"secret", AAD).expect("seals");
        // Forge the id of another vault's key onto the blob, so the wrong key is used.
        let other = vault_with(2);
        let mut forged = format!("{}:", other.current_key_id()).into_bytes();
        forged.extend_from_slice(&blob[PREFIX_LEN..]);

        assert_eq!(
            other.decrypt(&forged, AAD).map(|_| ()),
            Err(VaultError::AuthenticationFailed)
        );
    }

    #[test]
    fn a_blob_from_an_unconfigured_key_is_reported_by_its_key_id() {
        let blob = vault_with(1).encrypt(b"secret", AAD).expect("seals");

        let result = vault_with(2).decrypt(&blob, AAD);

        assert_eq!(
            result.map(|_| ()),
            Err(VaultError::UnknownKeyId {
                key_id: key(1).id()
            })
        );
    }

    #[test]
    fn flipping_any_byte_after_the_prefix_fails_authentication() {
        let vault = vault_with(1);
        let blob = vault.encrypt(b"secret", AAD).expect("seals");

        for index in PREFIX_LEN..blob.len() {
            let mut tampered = blob.clone();
            tampered[index] ^= 0x01;

            assert_eq!(
                vault.decrypt(&tampered, AAD).map(|_| ()),
                Err(VaultError::AuthenticationFailed),
                "byte {index} was flipped"
            );
        }
    }

    #[test]
    fn a_truncated_blob_is_malformed_or_fails_authentication() {
        let vault = vault_with(1);
        let blob = vault.encrypt(b"secret", AAD).expect("seals");

        assert_eq!(
            vault.decrypt(&blob[..blob.len() - 1], AAD).map(|_| ()),
            Err(VaultError::AuthenticationFailed)
        );
        assert_eq!(
            vault
                .decrypt(&blob[..PREFIX_LEN + NONCE_LEN], AAD)
                .map(|_| ()),
            Err(VaultError::Malformed)
        );
        assert_eq!(
            vault.decrypt(b"", AAD).map(|_| ()),
            Err(VaultError::Malformed)
        );
    }

    #[test]
    fn a_blob_without_a_key_id_prefix_is_malformed() {
        let vault = vault_with(1);
        let mut blob = vault.encrypt(b"secret", AAD).expect("seals");
        blob[KEY_ID_LEN] = b'-';

        assert_eq!(
            vault.decrypt(&blob, AAD).map(|_| ()),
            Err(VaultError::Malformed)
        );
    }

    #[test]
    fn a_blob_moved_to_another_row_fails_to_open() {
        let vault = vault_with(1);
        let blob = vault
            .encrypt(b"secret", b"connection:42:credentials")
            .expect("seals");

        let result = vault.decrypt(&blob, b"connection:43:credentials");

        assert_eq!(result.map(|_| ()), Err(VaultError::AuthenticationFailed));
    }

    #[test]
    fn decrypt_string_refuses_bytes_that_are_not_utf8() {
        let vault = vault_with(1);
        let blob = vault.encrypt(&[0xff, 0xfe], AAD).expect("seals");

        assert_eq!(
            vault.decrypt_string(&blob, AAD).map(|_| ()),
            Err(VaultError::NotUtf8)
        );
    }

    #[test]
    fn a_blob_sealed_with_a_previous_key_opens_after_rotation() {
        let old_blob = vault_with(1).encrypt(b"secret", AAD).expect("seals");

        let rotated = Vault::new(key(2), vec![key(1)]);

        assert!(rotated.needs_rotation(&old_blob));
        assert_eq!(
            rotated
                .decrypt(&old_blob, AAD)
                .expect("opens")
                .expose_secret()
                .as_slice(),
            b"secret"
        );
    }

    #[test]
    fn reencrypt_moves_a_blob_to_the_current_key() {
        let old_blob = vault_with(1).encrypt(b"secret", AAD).expect("seals");
        let rotated = Vault::new(key(2), vec![key(1)]);

        let new_blob = rotated.reencrypt(&old_blob, AAD).expect("re-seals");

        assert!(!rotated.needs_rotation(&new_blob));
        let only_new_key = vault_with(2);
        assert_eq!(
            only_new_key
                .decrypt(&new_blob, AAD)
                .expect("opens")
                .expose_secret()
                .as_slice(),
            b"secret"
        );
    }

    #[test]
    fn reencrypt_keeps_the_aad_binding() {
        let old_blob = vault_with(1).encrypt(b"secret", AAD).expect("seals");
        let rotated = Vault::new(key(2), vec![key(1)]);

        let new_blob = rotated.reencrypt(&old_blob, AAD).expect("re-seals");

        assert_eq!(
            rotated
                .decrypt(&new_blob, b"connection:7:credentials")
                .map(|_| ()),
            Err(VaultError::AuthenticationFailed)
        );
    }

    #[test]
    fn a_blob_under_the_current_key_does_not_need_rotation() {
        let vault = Vault::new(key(2), vec![key(1)]);
        let blob = vault.encrypt(b"secret", AAD).expect("seals");

        assert!(!vault.needs_rotation(&blob));
        assert!(vault.needs_rotation(b"not a vault blob"));
    }

    #[test]
    fn listing_the_current_key_among_previous_keys_is_harmless() {
        let vault = Vault::new(key(1), vec![key(1), key(2), key(2)]);
        let blob = vault.encrypt(b"secret", AAD).expect("seals");

        assert!(vault.decrypt(&blob, AAD).is_ok());
        let printed = format!("{vault:?}");
        assert_eq!(printed.matches(key(1).id().as_str()).count(), 1);
        assert_eq!(printed.matches(key(2).id().as_str()).count(), 1);
    }

    #[test]
    fn a_vault_knows_the_fingerprints_of_its_current_and_previous_keys_only() {
        let vault = Vault::new(key(2), vec![key(1)]);

        assert_eq!(vault.fingerprint(), key(2).fingerprint());
        assert!(vault.knows_fingerprint(&key(2).fingerprint()));
        assert!(vault.knows_fingerprint(&key(1).fingerprint()));
        assert!(!vault.knows_fingerprint(&key(3).fingerprint()));
    }

    #[test]
    fn a_key_parses_from_standard_and_url_safe_base64_with_or_without_padding() {
        let bytes: [u8; KEY_LEN] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xfb);
        let expected = EncryptionKey::from_bytes(bytes).fingerprint();

        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            let text = engine.encode(bytes);
            let parsed = EncryptionKey::parse(&text).expect("base64 key parses");
            assert_eq!(parsed.fingerprint(), expected, "{text}");
        }
    }

    #[test]
    fn a_key_parses_from_64_hex_characters_in_either_case() {
        let bytes: [u8; KEY_LEN] = std::array::from_fn(|i| i as u8 * 7);
        let expected = EncryptionKey::from_bytes(bytes).fingerprint();
        let lower = hex_encode(&bytes);

        assert_eq!(
            EncryptionKey::parse(&lower).expect("hex").fingerprint(),
            expected
        );
        assert_eq!(
            EncryptionKey::parse(&lower.to_uppercase())
                .expect("HEX")
                .fingerprint(),
            expected
        );
    }

    #[test]
    fn a_key_file_with_a_trailing_newline_parses() {
        let generated = EncryptionKey::generate().expect("os randomness");
        let file_contents = format!("{}\n", generated.to_base64().expose_secret());

        let parsed = EncryptionKey::parse(&file_contents).expect("parses");

        assert_eq!(parsed.fingerprint(), generated.fingerprint());
    }

    #[test]
    fn key_parsing_rejects_wrong_lengths_and_encodings_without_echoing_the_key() {
        let short = STANDARD.encode([7u8; 16]);
        let long_hex = "ab".repeat(33);
        let not_base64 = "this is not a key!!";

        let cases = [
            ("", KeyError::Empty),
            ("   \n", KeyError::Empty),
            (short.as_str(), KeyError::WrongLength { chars: 24 }),
            (long_hex.as_str(), KeyError::WrongLength { chars: 66 }),
            (&long_hex[..62], KeyError::WrongLength { chars: 62 }),
            (not_base64, KeyError::InvalidEncoding),
        ];
        for (text, expected) in cases {
            let error = EncryptionKey::parse(text).map(|_| ()).expect_err(text);
            assert_eq!(error, expected, "{text:?}");
            let message = error.to_string();
            assert!(
                text.trim().is_empty() || !message.contains(text.trim()),
                "{message}"
            );
        }
    }

    #[test]
    fn generated_keys_differ_and_survive_a_base64_round_trip() {
        let first = EncryptionKey::generate().expect("os randomness");
        let second = EncryptionKey::generate().expect("os randomness");

        let reparsed = EncryptionKey::parse(first.to_base64().expose_secret()).expect("parses");

        assert_ne!(first.fingerprint(), second.fingerprint());
        assert_eq!(reparsed.fingerprint(), first.fingerprint());
        assert_eq!(reparsed.id(), first.id());
    }

    #[test]
    fn the_key_id_is_eight_hex_characters_and_stable() {
        let id = key(9).id();

        assert_eq!(id.as_str().len(), KEY_ID_LEN);
        assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, key(9).id());
        assert_ne!(id, key(10).id());
    }

    #[test]
    fn the_fingerprint_is_64_hex_characters_unlike_the_key_and_the_key_id() {
        let key = key(3);

        let fingerprint = key.fingerprint();

        assert_eq!(fingerprint.len(), 64);
        assert_ne!(fingerprint, hex_encode(&[3u8; KEY_LEN]));
        assert_ne!(fingerprint, hex_encode(&Sha256::digest([3u8; KEY_LEN])));
        assert!(!fingerprint.starts_with(key.id().as_str()));
    }

    #[test]
    fn debug_output_of_keys_and_vaults_shows_only_key_ids() {
        let key = EncryptionKey::from_bytes([0xab; KEY_LEN]);
        let base64 = key.to_base64().expose_secret().clone();
        let vault = Vault::new(key.clone(), vec![self::key(1)]);

        let printed = format!("{key:?} {vault:?} {:?}", key.to_base64());

        assert!(printed.contains(key.id().as_str()));
        assert!(!printed.contains(&base64));
        assert!(!printed.contains("abab"));
        assert!(printed.contains("[redacted]"));
    }
}
