//! Identifier newtypes: each holds a value that already passed its rules, so code that
//! receives one never re-checks it (parse, don't validate).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a text is not a valid identifier of some kind. Identifiers are not secret, so
/// the offending character or host may be named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The text was empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier was being parsed.
        kind: &'static str,
    },
    /// The text is longer than the identifier allows.
    #[error("{kind} is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// Which identifier was being parsed.
        kind: &'static str,
        /// The text's length.
        len: usize,
        /// The most the identifier allows.
        max: usize,
    },
    /// The text holds a character the identifier does not allow.
    #[error("{kind} must not contain {character:?}")]
    InvalidCharacter {
        /// Which identifier was being parsed.
        kind: &'static str,
        /// The first character that is not allowed.
        character: char,
    },
    /// A Salesforce id is neither 15 nor 18 characters long.
    #[error("a Salesforce id has 15 or 18 characters, not {len}")]
    SalesforceIdLength {
        /// The text's length.
        len: usize,
    },
    /// The last 3 characters of an 18-character Salesforce id do not match the casing of
    /// its first 15 (the checksum encodes only which letters are uppercase).
    #[error("the last 3 characters of the 18-character Salesforce id do not match the first 15; the id was altered or mistyped")]
    SalesforceIdChecksum,
    /// A host name was given with a scheme such as `https://`.
    #[error("give only the host name without `https://`, e.g. acme.my.salesforce.com")]
    HostnameHasScheme,
    /// A host name was given with a path, query or fragment.
    #[error("give only the host name without a path, e.g. acme.my.salesforce.com")]
    HostnameHasPath,
    /// A host name was given with a port.
    #[error("give only the host name without a port, e.g. acme.my.salesforce.com")]
    HostnameHasPort,
    /// The host name breaks DNS rules (empty label, label over 63 characters, hyphen at
    /// a label's edge).
    #[error("{host:?} is not a valid DNS host name: {reason}")]
    InvalidHostname {
        /// The host name as given (lowercased).
        host: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The host is a Salesforce host, but one of its UI or content hosts rather than a
    /// host that serves login and the API.
    #[error("{host} is {what}; use your My Domain login host, e.g. acme.my.salesforce.com")]
    NotLoginHost {
        /// The host name as given (lowercased).
        host: String,
        /// What kind of host it is.
        what: &'static str,
    },
    /// The host is not under a Salesforce domain at all.
    #[error("{host} is not a Salesforce login host; use login.salesforce.com, test.salesforce.com or your My Domain host, e.g. acme.my.salesforce.com")]
    NotSalesforceHost {
        /// The host name as given (lowercased).
        host: String,
    },
}

/// Shared conversions for identifiers stored as a checked `String`.
macro_rules! string_identifier {
    ($name:ident) => {
        impl $name {
            /// The identifier's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Nango's limit for provider config keys and connection ids.
const NANGO_MAX_LEN: usize = 255;

/// Checks a non-empty, length-limited text whose characters all pass `allowed`.
fn check_characters(
    kind: &'static str,
    text: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if text.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if let Some(character) = text.chars().find(|&c| !allowed(c)) {
        return Err(IdError::InvalidCharacter { kind, character });
    }
    let len = text.chars().count();
    if len > max {
        return Err(IdError::TooLong { kind, len, max });
    }
    Ok(())
}

/// The key naming an integration's provider configuration, e.g. `salesforce-prod`.
/// Follows Nango's rule: `^[a-zA-Z0-9~:.@ _-]+$`, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderConfigKey(String);

impl ProviderConfigKey {
    /// Accepts a provider config key that follows Nango's rule.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        check_characters("a provider config key", text, NANGO_MAX_LEN, |c| {
            c.is_ascii_alphanumeric() || "~:.@ _-".contains(c)
        })?;
        Ok(Self(text.to_owned()))
    }
}

string_identifier!(ProviderConfigKey);

/// The caller-chosen id of a connection, usually the caller's own user or tenant id.
/// Follows Nango's rule: `^[a-zA-Z0-9,.;:=+~\[\]|@${}"'\\/_ -]+$`, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

impl ConnectionId {
    /// Accepts a connection id that follows Nango's rule.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        check_characters("a connection id", text, NANGO_MAX_LEN, |c| {
            c.is_ascii_alphanumeric() || ",.;:=+~[]|@${}\"'\\/_ -".contains(c)
        })?;
        Ok(Self(text.to_owned()))
    }
}

string_identifier!(ConnectionId);

/// The characters that encode a chunk's capital-letter bits in an 18-character id.
const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// A Salesforce record id, always in its 18-character, case-insensitive-safe form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SalesforceId(String);

impl SalesforceId {
    /// Accepts a 15-character id (and appends its checksum) or an 18-character id
    /// (and checks it). An 18-character id whose letters were all upper- or lowercased
    /// by another system gets its original casing back from the checksum.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        const KIND: &str = "a Salesforce id";
        if text.is_empty() {
            return Err(IdError::Empty { kind: KIND });
        }
        if let Some(character) = text.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(IdError::InvalidCharacter {
                kind: KIND,
                character,
            });
        }
        let bytes = text.as_bytes();
        match bytes.len() {
            15 => {
                let mut id = text.to_owned();
                id.extend(checksum(bytes).map(char::from));
                Ok(Self(id))
            }
            18 => {
                let (head, suffix) = bytes.split_at(15);
                if checksum(head) == suffix {
                    return Ok(Self(text.to_owned()));
                }
                restore_case(head, suffix).ok_or(IdError::SalesforceIdChecksum)
            }
            len => Err(IdError::SalesforceIdLength { len }),
        }
    }

    /// The first 3 characters, which name the object type (`001` is Account).
    pub fn key_prefix(&self) -> &str {
        &self.0[..3]
    }

    /// The 15-character, case-sensitive form.
    pub fn as_15(&self) -> &str {
        &self.0[..15]
    }
}

string_identifier!(SalesforceId);

/// For each 5-character chunk, one character whose index holds a bit per uppercase letter.
fn checksum(id15: &[u8]) -> [u8; 3] {
    let mut suffix = [0u8; 3];
    for (slot, chunk) in suffix.iter_mut().zip(id15.chunks(5)) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, byte)| byte.is_ascii_uppercase())
            .fold(0usize, |bits, (position, _)| bits | (1 << position));
        *slot = CHECKSUM_ALPHABET[bits];
    }
    suffix
}

/// Recovers the casing of an 18-character id whose letters were folded to one case.
/// Refuses ids with mixed-case letters: those were not folded, so a mismatch there
/// means a changed character, not a lost case.
fn restore_case(head: &[u8], suffix: &[u8]) -> Option<SalesforceId> {
    let has_upper = head.iter().any(u8::is_ascii_uppercase);
    let has_lower = head.iter().any(u8::is_ascii_lowercase);
    if has_upper && has_lower {
        return None;
    }
    let mut restored = Vec::with_capacity(18);
    for (chunk, code) in head.chunks(5).zip(suffix) {
        let bits = CHECKSUM_ALPHABET
            .iter()
            .position(|&c| c == code.to_ascii_uppercase())?;
        for (position, &byte) in chunk.iter().enumerate() {
            let uppercase = bits & (1 << position) != 0;
            match (byte.is_ascii_alphabetic(), uppercase) {
                (true, true) => restored.push(byte.to_ascii_uppercase()),
                (true, false) => restored.push(byte.to_ascii_lowercase()),
                (false, false) => restored.push(byte),
                (false, true) => return None,
            }
        }
    }
    restored.extend(suffix.iter().map(u8::to_ascii_uppercase));
    String::from_utf8(restored).ok().map(SalesforceId)
}

/// Longest DNS host name, in characters.
const HOSTNAME_MAX_LEN: usize = 253;
/// Longest DNS label, in characters.
const LABEL_MAX_LEN: usize = 63;

/// Salesforce hosts that serve a UI or files, not login and the API, with what to call
/// them in an error.
const NON_LOGIN_SUFFIXES: &[(&str, &str)] = &[
    (".lightning.force.com", "the Lightning UI host"),
    (".lightning.salesforce.com", "the Lightning UI host"),
    (".my.salesforce-setup.com", "the Setup UI host"),
    (".vf.force.com", "a Visualforce host"),
    (".visual.force.com", "a Visualforce host"),
    (".file.force.com", "a file download host"),
    (".content.force.com", "a file content host"),
];

/// Middle labels of My Domain hosts, which are not an org's host on their own.
const MY_DOMAIN_PARTS: &[&str] = &[
    "my",
    "sandbox",
    "develop",
    "scratch",
    "patch",
    "demo",
    "trailblaze",
    "free",
];

/// A Salesforce host that serves OAuth login and the API: `login.salesforce.com`,
/// `test.salesforce.com`, a My Domain host (`acme.my.salesforce.com`,
/// `acme--dev.sandbox.my.salesforce.com`), an Experience Cloud host (`acme.my.site.com`),
/// a legacy `*.force.com` / `*.cloudforce.com` host or a legacy instance (`na1.salesforce.com`).
/// Stored lowercase, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SalesforceHostname(String);

impl SalesforceHostname {
    /// Accepts a bare Salesforce login host name; refuses URLs, ports, paths, UI hosts
    /// and hosts outside Salesforce's domains, saying which it was.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        const KIND: &str = "a Salesforce host name";
        if text.is_empty() {
            return Err(IdError::Empty { kind: KIND });
        }
        let lower = text.to_ascii_lowercase();
        if lower.contains("://") || lower.starts_with("http:") || lower.starts_with("https:") {
            return Err(IdError::HostnameHasScheme);
        }
        if lower.contains(['/', '?', '#']) {
            return Err(IdError::HostnameHasPath);
        }
        if lower.contains(':') {
            return Err(IdError::HostnameHasPort);
        }
        let host = lower.strip_suffix('.').unwrap_or(&lower);
        check_characters(KIND, host, HOSTNAME_MAX_LEN, |c| {
            c.is_ascii_alphanumeric() || c == '-' || c == '.'
        })?;
        check_labels(host)?;
        classify(host)?;
        Ok(Self(host.to_owned()))
    }

    /// Whether the host logs in to sandboxes: `test.salesforce.com` or a
    /// `*.sandbox.my.salesforce.com` / `*.sandbox.my.site.com` host.
    pub fn is_sandbox(&self) -> bool {
        self.0 == "test.salesforce.com"
            || self.0.ends_with(".sandbox.my.salesforce.com")
            || self.0.ends_with(".sandbox.my.site.com")
    }
}

string_identifier!(SalesforceHostname);

fn check_labels(host: &str) -> Result<(), IdError> {
    let invalid = |reason| IdError::InvalidHostname {
        host: host.to_owned(),
        reason,
    };
    for label in host.split('.') {
        if label.is_empty() {
            return Err(invalid(
                "it has an empty label (two dots in a row, or a leading dot)",
            ));
        }
        if label.len() > LABEL_MAX_LEN {
            return Err(invalid("a label is longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label starts or ends with a hyphen"));
        }
    }
    Ok(())
}

/// Decides whether an already well-formed, lowercase host is a Salesforce login host.
fn classify(host: &str) -> Result<(), IdError> {
    if let Some((_, what)) = NON_LOGIN_SUFFIXES
        .iter()
        .find(|(suffix, _)| host.ends_with(suffix))
    {
        return Err(IdError::NotLoginHost {
            host: host.to_owned(),
            what,
        });
    }
    let org_part = |suffix: &str| {
        host.strip_suffix(suffix)
            .filter(|org| !MY_DOMAIN_PARTS.contains(org))
    };
    let accepted = matches!(host, "login.salesforce.com" | "test.salesforce.com")
        || org_part(".my.salesforce.com").is_some()
        || org_part(".my.site.com").is_some()
        || org_part(".force.com").is_some()
        || org_part(".cloudforce.com").is_some()
        || host
            .strip_suffix(".salesforce.com")
            .is_some_and(is_legacy_instance);
    if accepted {
        Ok(())
    } else {
        Err(IdError::NotSalesforceHost {
            host: host.to_owned(),
        })
    }
}

/// A legacy instance label such as `na1`, `cs42`, `eu12` or `usa3s`: letters, then digits,
/// then at most one letter.
fn is_legacy_instance(label: &str) -> bool {
    let letters = label.bytes().take_while(u8::is_ascii_lowercase).count();
    let rest = &label.as_bytes()[letters..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let tail = &rest[digits..];
    (2..=4).contains(&letters)
        && digits > 0
        && (tail.is_empty() || (tail.len() == 1 && tail[0].is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_config_keys_accept_nangos_characters() {
        for text in ["salesforce", "salesforce-prod", "acme:sf.v2@eu ~_x", "A"] {
            let key = ProviderConfigKey::parse(text).expect(text);
            assert_eq!(key.as_str(), text);
        }
    }

    #[test]
    fn provider_config_keys_refuse_other_characters_empty_text_and_over_255_characters() {
        assert_eq!(
            ProviderConfigKey::parse("sales/force"),
            Err(IdError::InvalidCharacter {
                kind: "a provider config key",
                character: '/'
            })
        );
        assert!(ProviderConfigKey::parse("é").is_err());
        assert!(matches!(
            ProviderConfigKey::parse(""),
            Err(IdError::Empty { .. })
        ));
        assert!(ProviderConfigKey::parse(&"k".repeat(255)).is_ok());
        assert!(matches!(
            ProviderConfigKey::parse(&"k".repeat(256)),
            Err(IdError::TooLong {
                len: 256,
                max: 255,
                ..
            })
        ));
    }

    #[test]
    fn connection_ids_accept_nangos_wider_character_set() {
        let text = r#"user-1,a.b;c:d=e+f~[g]|h@i$j{k}"l'm\n/o_p q"#;

        let id = ConnectionId::parse(text).expect("all characters are allowed");

        assert_eq!(id.as_str(), text);
        assert_eq!(id.to_string(), text);
    }

    #[test]
    fn connection_ids_refuse_other_characters_empty_text_and_over_255_characters() {
        for text in ["tab\there", "new\nline", "percent%", "hash#", "ü"] {
            assert!(
                matches!(
                    ConnectionId::parse(text),
                    Err(IdError::InvalidCharacter { .. })
                ),
                "{text:?}"
            );
        }
        assert!(matches!(
            ConnectionId::parse(""),
            Err(IdError::Empty { .. })
        ));
        assert!(matches!(
            ConnectionId::parse(&"c".repeat(256)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn ids_deserialize_through_their_rules_and_serialize_as_plain_strings() {
        let id: ConnectionId = serde_json::from_str(r#""user-42""#).expect("valid id");
        let refused = serde_json::from_str::<ProviderConfigKey>(r#""no/slash""#);

        assert_eq!(
            serde_json::to_string(&id).expect("serializes"),
            r#""user-42""#
        );
        assert!(refused.is_err());
    }

    #[test]
    fn a_15_character_salesforce_id_gains_its_checksum() {
        let cases = [
            ("001D000000IRFma", "001D000000IRFmaIAH"),
            ("750R0000000zlh9", "750R0000000zlh9IAA"),
            ("000000000000000", "000000000000000AAA"),
            ("ZZZZZZZZZZZZZZZ", "ZZZZZZZZZZZZZZZ555"),
        ];
        for (short, full) in cases {
            let id = SalesforceId::parse(short).expect(short);
            assert_eq!(id.as_str(), full);
            assert_eq!(id.as_15(), short);
        }
    }

    #[test]
    fn an_18_character_salesforce_id_with_a_matching_checksum_is_kept() {
        let id = SalesforceId::parse("001D000000IRFmaIAH").expect("valid id");

        assert_eq!(id.as_str(), "001D000000IRFmaIAH");
        assert_eq!(id.key_prefix(), "001");
    }

    #[test]
    fn a_case_folded_18_character_salesforce_id_gets_its_casing_back() {
        let lower = SalesforceId::parse("001d000000irfmaiah").expect("lowercased id");
        let upper = SalesforceId::parse("750R0000000ZLH9IAA").expect("uppercased id");

        assert_eq!(lower.as_str(), "001D000000IRFmaIAH");
        assert_eq!(upper.as_str(), "750R0000000zlh9IAA");
    }

    #[test]
    fn an_18_character_salesforce_id_with_a_wrong_checksum_is_refused() {
        for text in [
            "001D000000IRFmaIAA",
            "001D000000IRFMaIAH",
            "001D000000IRFMAIA9",
        ] {
            assert_eq!(
                SalesforceId::parse(text),
                Err(IdError::SalesforceIdChecksum),
                "{text}"
            );
        }
    }

    #[test]
    fn salesforce_ids_of_other_lengths_or_characters_are_refused() {
        assert_eq!(
            SalesforceId::parse("001D000000IRFm"),
            Err(IdError::SalesforceIdLength { len: 14 })
        );
        assert_eq!(
            SalesforceId::parse("001D000000IRFmaI"),
            Err(IdError::SalesforceIdLength { len: 16 })
        );
        assert!(matches!(
            SalesforceId::parse("001D000000IRF-a"),
            Err(IdError::InvalidCharacter { character: '-', .. })
        ));
        assert!(matches!(
            SalesforceId::parse(""),
            Err(IdError::Empty { .. })
        ));
    }

    #[test]
    fn salesforce_login_hosts_are_accepted_in_lowercase() {
        let hosts = [
            "login.salesforce.com",
            "test.salesforce.com",
            "acme.my.salesforce.com",
            "acme--dev.sandbox.my.salesforce.com",
            "acme-dev-ed.develop.my.salesforce.com",
            "acme.my.site.com",
            "acme.force.com",
            "acme.cloudforce.com",
            "na1.salesforce.com",
            "cs42.salesforce.com",
        ];
        for host in hosts {
            assert_eq!(SalesforceHostname::parse(host).expect(host).as_str(), host);
        }
        let mixed_case = SalesforceHostname::parse("Acme.My.Salesforce.com.").expect("valid");
        assert_eq!(mixed_case.as_str(), "acme.my.salesforce.com");
    }

    #[test]
    fn lightning_ui_hosts_are_refused_with_a_pointer_to_the_my_domain_host() {
        for host in ["acme.lightning.force.com", "acme.lightning.salesforce.com"] {
            let error = SalesforceHostname::parse(host).expect_err(host);

            assert_eq!(
                error.to_string(),
                format!(
                    "{host} is the Lightning UI host; use your My Domain login host, e.g. acme.my.salesforce.com"
                )
            );
        }
    }

    #[test]
    fn setup_visualforce_and_file_hosts_are_refused_as_non_login_hosts() {
        for host in [
            "acme.my.salesforce-setup.com",
            "acme--c.vf.force.com",
            "acme--c.visual.force.com",
            "acme--c.file.force.com",
        ] {
            assert!(
                matches!(
                    SalesforceHostname::parse(host),
                    Err(IdError::NotLoginHost { .. })
                ),
                "{host}"
            );
        }
    }

    #[test]
    fn urls_ports_and_paths_are_refused_with_what_to_remove() {
        assert_eq!(
            SalesforceHostname::parse("https://acme.my.salesforce.com"),
            Err(IdError::HostnameHasScheme)
        );
        assert_eq!(
            SalesforceHostname::parse("acme.my.salesforce.com/services/oauth2"),
            Err(IdError::HostnameHasPath)
        );
        assert_eq!(
            SalesforceHostname::parse("acme.my.salesforce.com?x=1"),
            Err(IdError::HostnameHasPath)
        );
        assert_eq!(
            SalesforceHostname::parse("acme.my.salesforce.com:443"),
            Err(IdError::HostnameHasPort)
        );
    }

    #[test]
    fn malformed_host_names_are_refused() {
        for host in [
            "acme..my.salesforce.com",
            ".my.salesforce.com",
            "-acme.my.salesforce.com",
        ] {
            assert!(
                matches!(
                    SalesforceHostname::parse(host),
                    Err(IdError::InvalidHostname { .. })
                ),
                "{host}"
            );
        }
        for host in [
            "acme my.salesforce.com",
            "user@acme.my.salesforce.com",
            "acme_x.my.salesforce.com",
        ] {
            assert!(
                matches!(
                    SalesforceHostname::parse(host),
                    Err(IdError::InvalidCharacter { .. })
                ),
                "{host}"
            );
        }
        let long_label = format!("{}.my.salesforce.com", "a".repeat(64));
        assert!(SalesforceHostname::parse(&long_label).is_err());
        assert!(matches!(
            SalesforceHostname::parse(""),
            Err(IdError::Empty { .. })
        ));
    }

    #[test]
    fn hosts_outside_salesforce_or_bare_salesforce_domains_are_refused() {
        for host in [
            "example.com",
            "salesforce.com",
            "www.salesforce.com",
            "my.salesforce.com",
            "sandbox.my.salesforce.com",
            "salesforce.com.evil.example",
            "evilsalesforce.com",
            "localhost",
        ] {
            assert!(
                matches!(
                    SalesforceHostname::parse(host),
                    Err(IdError::NotSalesforceHost { .. })
                ),
                "{host}"
            );
        }
    }

    #[test]
    fn sandbox_hosts_are_recognised() {
        let sandbox = |host| SalesforceHostname::parse(host).expect(host).is_sandbox();

        assert!(sandbox("test.salesforce.com"));
        assert!(sandbox("acme--dev.sandbox.my.salesforce.com"));
        assert!(!sandbox("login.salesforce.com"));
        assert!(!sandbox("acme.my.salesforce.com"));
    }
}
