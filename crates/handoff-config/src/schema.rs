//! The shape of [`Settings`]: its key paths and what each key holds, read from the
//! settings' own `Deserialize` implementation, so a key added to a settings struct is
//! reachable from the environment (crate::env) without being listed anywhere.
//!
//! How: `Settings` is deserialized from a [`Probe`], a deserializer with no data that
//! walks down one key path and records what the type asks for at its end: a struct (serde
//! hands over its field names), a map (any key), or a value of some kind. One run per key;
//! each run ends in a deliberate error, because the probe has no value to give.

use std::cell::RefCell;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::Settings;

/// The name [`crate::Secret`] deserializes under, so the shape knows which keys are secrets.
pub(crate) const SECRET_NAME: &str = "Secret";

/// One node of the settings' shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// A struct (a TOML table with a fixed set of keys), its fields in declaration order.
    Table(Vec<(&'static str, Shape)>),
    /// A table whose keys are free (`[kafka.client]`: librdkafka properties).
    Map,
    Value(Kind),
}

/// What a key holds, as far as an environment override needs to know.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Bool,
    Integer,
    Float,
    /// Strings, enum variants, addresses, paths.
    Text,
    /// A [`crate::Secret`]: text that is never printed.
    Secret,
    /// A list of these.
    List(Box<Kind>),
    /// A table inside a list (`[[ingest.keys]]`).
    Table,
    /// Anything the type decides for itself (an untagged enum: a list or a comma-separated
    /// string, a number or a string holding one); given as text.
    Any,
}

/// The shape of the whole settings file (computed once).
pub(crate) fn settings() -> &'static Shape {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    SHAPE.get_or_init(|| shape_at(&mut Vec::new()))
}

fn shape_at(path: &mut Vec<&'static str>) -> Shape {
    match probe::<Settings>(path) {
        Found::Struct(fields) => Shape::Table(
            fields
                .iter()
                .map(|field| {
                    path.push(field);
                    let shape = shape_at(path);
                    path.pop();
                    (*field, shape)
                })
                .collect(),
        ),
        Found::Map => Shape::Map,
        Found::Value(kind) => Shape::Value(kind),
        // A field serde listed but would not let the probe reach: treat it as text, which
        // the real deserializer then checks.
        Found::Nothing => Shape::Value(Kind::Any),
    }
}

#[derive(Debug, Clone)]
enum Found {
    Struct(&'static [&'static str]),
    Map,
    Value(Kind),
    Nothing,
}

impl Found {
    fn kind(&self) -> Kind {
        match self {
            Found::Struct(_) | Found::Map => Kind::Table,
            Found::Value(kind) => kind.clone(),
            Found::Nothing => Kind::Any,
        }
    }
}

/// What `T` asks for at `path`.
fn probe<T: for<'de> Deserialize<'de>>(path: &[&'static str]) -> Found {
    let found = RefCell::new(Found::Nothing);
    // Always an error: the probe stops where it has recorded what it came for.
    let _ = T::deserialize(Probe {
        path,
        found: &found,
    });
    found.into_inner()
}

/// The probe's way of stopping a deserialization.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("shape probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

struct Probe<'a> {
    /// The keys still to walk down.
    path: &'a [&'static str],
    found: &'a RefCell<Found>,
}

impl Probe<'_> {
    /// At the end of the path: records `kind`. Before it: the path goes through a value,
    /// which has no keys.
    fn value<T>(self, kind: Kind) -> Result<T, Stop> {
        if self.path.is_empty() {
            *self.found.borrow_mut() = Found::Value(kind);
        }
        Err(Stop)
    }
}

macro_rules! kinds {
    ($($method:ident => $kind:expr),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
            self.value($kind)
        })*
    };
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    kinds! {
        deserialize_any => Kind::Any,
        deserialize_bool => Kind::Bool,
        deserialize_i8 => Kind::Integer,
        deserialize_i16 => Kind::Integer,
        deserialize_i32 => Kind::Integer,
        deserialize_i64 => Kind::Integer,
        deserialize_i128 => Kind::Integer,
        deserialize_u8 => Kind::Integer,
        deserialize_u16 => Kind::Integer,
        deserialize_u32 => Kind::Integer,
        deserialize_u64 => Kind::Integer,
        deserialize_u128 => Kind::Integer,
        deserialize_f32 => Kind::Float,
        deserialize_f64 => Kind::Float,
        deserialize_char => Kind::Text,
        deserialize_str => Kind::Text,
        deserialize_string => Kind::Text,
        deserialize_bytes => Kind::Text,
        deserialize_byte_buf => Kind::Text,
        deserialize_unit => Kind::Any,
        deserialize_identifier => Kind::Text,
        deserialize_ignored_any => Kind::Any,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        // An optional key is set from the environment like the key itself.
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.value(Kind::Any)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if name == SECRET_NAME {
            return self.value(Kind::Secret);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        if !self.path.is_empty() {
            return Err(Stop);
        }
        let element = RefCell::new(Found::Nothing);
        let _ = visitor.visit_seq(OneElement {
            probe: Some(Probe {
                path: &[],
                found: &element,
            }),
        });
        let kind = element.into_inner().kind();
        self.value(Kind::List(Box::new(kind)))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Stop> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        // Any key: the probe does not look inside (a path through a map ends at it).
        *self.found.borrow_mut() = Found::Map;
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => {
                *self.found.borrow_mut() = Found::Struct(fields);
                Err(Stop)
            }
            Some((key, rest)) if fields.contains(key) => visitor.visit_map(OneEntry {
                key: Some(key),
                value: Some(Probe {
                    path: rest,
                    found: self.found,
                }),
            }),
            Some(_) => Err(Stop),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        // Unit variants, written as their name.
        self.value(Kind::Text)
    }
}

/// A map with the one key the probe walks down.
struct OneEntry<'a> {
    key: Option<&'static str>,
    value: Option<Probe<'a>>,
}

impl<'de> MapAccess<'de> for OneEntry<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(key))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        match self.value.take() {
            Some(probe) => seed.deserialize(probe),
            None => Err(Stop),
        }
    }
}

/// A list with one element, to learn what a list holds.
struct OneElement<'a> {
    probe: Option<Probe<'a>>,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        match self.probe.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

impl Shape {
    /// Every key that takes a value, as its path (`["sla", "escalation", "max_attempts"]`)
    /// and shape (a value or a map); tables are walked into.
    pub(crate) fn keys(&self) -> Vec<(Vec<&'static str>, &Shape)> {
        let mut out = Vec::new();
        self.collect_keys(&mut Vec::new(), &mut out);
        out
    }

    fn collect_keys<'s>(
        &'s self,
        path: &mut Vec<&'static str>,
        out: &mut Vec<(Vec<&'static str>, &'s Shape)>,
    ) {
        match self {
            Shape::Table(fields) => {
                for (name, shape) in fields {
                    path.push(name);
                    shape.collect_keys(path, out);
                    path.pop();
                }
            }
            Shape::Map | Shape::Value(_) => out.push((path.clone(), self)),
        }
    }

    /// The field `name` of a table.
    pub(crate) fn field(&self, name: &str) -> Option<&Shape> {
        match self {
            Shape::Table(fields) => fields
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, shape)| shape),
            Shape::Map | Shape::Value(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'s>(shape: &'s Shape, path: &str) -> Option<&'s Shape> {
        path.split('.')
            .try_fold(shape, |shape, key| shape.field(key))
    }

    #[test]
    fn the_shape_is_read_from_the_settings_types() {
        let shape = settings();
        assert_eq!(at(shape, "rules_file"), Some(&Shape::Value(Kind::Text)));
        assert_eq!(
            at(shape, "kafka.partitions"),
            Some(&Shape::Value(Kind::Integer))
        );
        assert_eq!(at(shape, "kafka.client"), Some(&Shape::Map));
        assert_eq!(
            at(shape, "sla.escalation.max_attempts"),
            Some(&Shape::Value(Kind::Integer))
        );
        // Option<String>: set like the string.
        assert_eq!(
            at(shape, "sla.escalation.to_team"),
            Some(&Shape::Value(Kind::Text))
        );
        assert_eq!(
            at(shape, "notifier.signing_secret"),
            Some(&Shape::Value(Kind::Secret))
        );
        assert_eq!(
            at(shape, "sla.reminder_fractions"),
            Some(&Shape::Value(Kind::List(Box::new(Kind::Float))))
        );
        assert_eq!(
            at(shape, "ingest.keys"),
            Some(&Shape::Value(Kind::List(Box::new(Kind::Table))))
        );
        assert_eq!(
            at(shape, "ingest.limits.trust_forwarded_for"),
            Some(&Shape::Value(Kind::Bool))
        );
        assert_eq!(at(shape, "log.format"), Some(&Shape::Value(Kind::Text)));
        assert_eq!(
            at(shape, "funnel.top_n"),
            Some(&Shape::Value(Kind::Integer))
        );
        // Skipped fields (read from the variable another key names) are not keys.
        assert_eq!(at(shape, "actions.secret"), None);
        assert!(shape.keys().len() > 80, "{}", shape.keys().len());
    }
}
