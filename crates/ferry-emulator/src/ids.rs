//! Salesforce record ids: generation with key prefixes, the 18-character checksum suffix, and 15/18 normalisation.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The three-character checksum that turns a 15-character id into its case-safe 18-character form.
pub fn checksum_suffix(id15: &[u8; 15]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk_index, chunk) in id15.chunks(5).enumerate() {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        out[chunk_index] = SUFFIX_ALPHABET[bits];
    }
    out
}

/// Builds an 18-character id from a key prefix, a two-character pod code and a sequence number.
pub fn make_id(prefix: &str, pod: &str, seq: u64) -> String {
    let mut id15 = [b'0'; 15];
    id15[..3].copy_from_slice(&prefix.as_bytes()[..3]);
    id15[3..5].copy_from_slice(&pod.as_bytes()[..2]);
    let mut n = seq;
    let mut pos = 14;
    while n > 0 && pos >= 5 {
        id15[pos] = BASE62[(n % 62) as usize];
        n /= 62;
        pos -= 1;
    }
    let suffix = checksum_suffix(&id15);
    let mut s = String::with_capacity(18);
    s.push_str(std::str::from_utf8(&id15).unwrap_or_default());
    s.push_str(std::str::from_utf8(&suffix).unwrap_or_default());
    s
}

/// Parses a 15- or 18-character id into its canonical 18-character form, checking the suffix.
///
/// Returns `None` for anything that is not a well-formed Salesforce id.
pub fn normalize(id: &str) -> Option<String> {
    let bytes = id.as_bytes();
    if !(bytes.len() == 15 || bytes.len() == 18) || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut id15 = [0u8; 15];
    id15.copy_from_slice(&bytes[..15]);
    let suffix = checksum_suffix(&id15);
    if bytes.len() == 18 {
        // The suffix is case-insensitive in practice; compare ignoring case.
        if !bytes[15..].eq_ignore_ascii_case(&suffix) {
            return None;
        }
    }
    let mut s = String::with_capacity(18);
    s.push_str(&id[..15]);
    s.push_str(std::str::from_utf8(&suffix).unwrap_or_default());
    Some(s)
}

/// The 15-character form of a valid id (the first 15 characters).
pub fn id15(id: &str) -> &str {
    &id[..id.len().min(15)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_matches_documented_examples() {
        assert_eq!(
            normalize("001D000000IRFma").as_deref(),
            Some("001D000000IRFmaIAH")
        );
        assert_eq!(
            normalize("750R0000000zlh9").as_deref(),
            Some("750R0000000zlh9IAA")
        );
        assert_eq!(
            normalize("00Dd0000000dsWLEAY").as_deref(),
            Some("00Dd0000000dsWLEAY")
        );
        assert_eq!(
            normalize("005d0000000b8kWAAQ").as_deref(),
            Some("005d0000000b8kWAAQ")
        );
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = make_id("003", "5g", 1);
        let b = make_id("003", "5g", 62);
        assert_eq!(a.len(), 18);
        assert_ne!(a, b);
        assert_eq!(normalize(&a).as_deref(), Some(a.as_str()));
        assert!(normalize("003abc").is_none());
        assert!(normalize("001D000000IRFmaXXX").is_none());
    }
}
