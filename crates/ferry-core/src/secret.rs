//! Secret values: redacted when printed, opened only on purpose, wiped from memory on drop.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// What a secret prints as, in `Debug` and `Display` alike.
pub const REDACTED: &str = "[redacted]";

/// A value that must not leak: it prints as `[redacted]`, is read only through
/// [`Secret::expose_secret`], and its memory is zeroized when it is dropped.
///
/// It deserializes like the inner value but does not implement `Serialize`, so a
/// struct holding one cannot be written to a response or a log by accident; use
/// [`serialize_exposed`] on a field where writing the secret out is intended.
pub struct Secret<T: Zeroize> {
    inner: T,
}

/// A secret text: a token, a password, a client secret.
pub type SecretString = Secret<String>;

/// Secret bytes, such as a decrypted vault payload.
pub type SecretVec = Secret<Vec<u8>>;

impl<T: Zeroize> Secret<T> {
    /// Wraps a value so it is redacted and zeroized from now on.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    /// Opens the secret. Every call site is a place where the value can escape, so keep
    /// them few and easy to find.
    pub fn expose_secret(&self) -> &T {
        &self.inner
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.inner.zeroize();
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone())
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(inner: T) -> Self {
        Self::new(inner)
    }
}

impl From<&str> for SecretString {
    fn from(text: &str) -> Self {
        Self::new(text.to_owned())
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self::new)
    }
}

/// Writes the secret's value for a field marked
/// `#[serde(serialize_with = "ferry_core::secret::serialize_exposed")]`: the explicit
/// opt-in for the rare place (a credentials file, an outbound token request) where the
/// value must be serialized.
pub fn serialize_exposed<T, S>(secret: &Secret<T>, serializer: S) -> Result<S::Ok, S::Error>
where
    T: Zeroize + Serialize,
    S: Serializer,
{
    secret.expose_secret().serialize(serializer)
}

/// Whether two byte strings are equal, in time that depends only on their lengths (for secrets
/// and their digests: keys, signatures, cookie bindings).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_print_redacted_instead_of_the_value() {
        let secret = SecretString::from("hunter2");

        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:#?}"), "[redacted]");
    }

    #[test]
    fn a_struct_deriving_debug_does_not_leak_its_secret_field() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Credentials {
            client_id: String,
            client_secret: SecretString,
        }
        let credentials = Credentials {
            client_id: "3MVG9".to_owned(),
            client_secret: SecretString::from("s3cr3t-value"),
        };

        let printed = format!("{credentials:?}");

        assert!(printed.contains("3MVG9"));
        assert!(printed.contains("[redacted]"));
        assert!(!printed.contains("s3cr3t-value"));
    }

    #[test]
    fn expose_secret_returns_the_wrapped_value() {
        let secret = SecretString::from("token");

        assert_eq!(secret.expose_secret(), "token");
    }

    #[test]
    fn a_clone_holds_the_same_value() {
        let secret = SecretVec::new(vec![1, 2, 3]);

        let copy = secret.clone();
        drop(secret);

        assert_eq!(copy.expose_secret(), &vec![1, 2, 3]);
    }

    #[test]
    fn a_secret_deserializes_from_the_plain_json_value() {
        #[derive(Deserialize)]
        struct Input {
            password: SecretString,
        }

        let input: Input =
            serde_json::from_str(r#"{"password":"p@ss"}"#).expect("valid json deserializes");

        assert_eq!(input.password.expose_secret(), "p@ss");
    }

    #[test]
    fn serialize_exposed_writes_the_value_when_a_field_opts_in() {
        #[derive(Serialize)]
        struct Output {
            #[serde(serialize_with = "serialize_exposed")]
            refresh_token: SecretString,
        }
        let output = Output {
            refresh_token: SecretString::from("5Aep861"),
        };

        let json = serde_json::to_string(&output).expect("serializes");

        assert_eq!(json, r#"{"refresh_token":"5Aep861"}"#);
    }
}
