use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string that never shows in `Debug` output, logs or a printed configuration.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: call only where it is used (signing), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// What a printed configuration shows for a secret that is set.
pub const REDACTED: &str = "[redacted]";

/// A newtype to serde (not `transparent`), so the settings' shape knows which keys are
/// secrets (crate::schema); TOML reads it as the plain string.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl<'de> serde::de::Visitor<'de> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Secret, D::Error> {
                String::deserialize(deserializer).map(Secret)
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
                Ok(Secret::new(value))
            }
        }
        deserializer.deserialize_newtype_struct(crate::schema::SECRET_NAME, SecretVisitor)
    }
}

/// Redacted: a serialized configuration is for reading, and a secret is never shown (an
/// unset one shows as empty, so a missing secret is visible).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // assertions in tests
mod tests {
    use super::*;

    #[test]
    fn a_secret_reads_as_a_string_and_never_serializes_its_value() {
        #[derive(Deserialize, Serialize)]
        struct Holder {
            secret: Secret,
            unset: Secret,
        }
        let holder: Holder = toml::from_str("secret = \"hunter2\"\nunset = \"\"").unwrap();
        assert_eq!(holder.secret.expose(), "hunter2");
        let printed = toml::to_string(&holder).unwrap();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains(REDACTED), "{printed}");
    }
}
