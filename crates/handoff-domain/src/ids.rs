//! Identifiers of the things leads move between. Each is its own type so a rep id cannot be
//! passed where a team id is expected; absence is `Option<…>`, never an empty string.
//! On the wire (proto3 JSON) they are plain strings.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad`, not `write_str`: widths and alignment (`{:<18}`) apply.
                f.pad(&self.0)
            }
        }
    };
}

string_id!(
    /// A rep, as the rules file names them.
    RepId
);
string_id!(
    /// A team, as the rules file names them.
    TeamId
);
string_id!(
    /// A queue leads wait in when nobody can take them (a team's overflow queue, the
    /// unrouted queue, nurture).
    QueueName
);

/// Serde helpers for optional ids that proto3 JSON writes as `""` when unset: both an absent
/// field and an empty string read as `None`; `None` is not written.
pub mod empty_as_none {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T, S>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: AsRef<str>,
        S: Serializer,
    {
        match value {
            Some(id) => serializer.serialize_str(id.as_ref()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: From<String>,
        D: Deserializer<'de>,
    {
        let value = Option::<String>::deserialize(deserializer)?;
        Ok(value.filter(|s| !s.is_empty()).map(T::from))
    }
}

/// Whether an error may go away if the same operation is tried again later (a dependency
/// down or slow) or never will (the input or the stored data is wrong). Callers decide
/// retry versus dead-letter from this, never from the error's text.
pub trait Transience {
    fn is_transient(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(
            default,
            with = "empty_as_none",
            skip_serializing_if = "Option::is_none"
        )]
        rep: Option<RepId>,
    }

    #[test]
    fn empty_and_absent_ids_read_as_none() -> Result<(), serde_json::Error> {
        let empty: Holder = serde_json::from_str(r#"{"rep":""}"#)?;
        let absent: Holder = serde_json::from_str("{}")?;
        assert_eq!(empty, Holder { rep: None });
        assert_eq!(absent, Holder { rep: None });
        assert_eq!(serde_json::to_string(&absent)?, "{}");
        let some: Holder = serde_json::from_str(r#"{"rep":"ana"}"#)?;
        assert_eq!(some.rep, Some(RepId::from("ana")));
        assert_eq!(serde_json::to_string(&some)?, r#"{"rep":"ana"}"#);
        Ok(())
    }
}
