//! Field-level validation errors and the normalizers that produce canonical values.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Limits on free-text fields: bounded so one lead cannot blow up a topic or a log line.
pub mod limits {
    pub const EMAIL: usize = 254;
    pub const NAME: usize = 100;
    pub const PHONE: usize = 32;
    pub const TITLE: usize = 200;
    pub const COMPANY: usize = 200;
    pub const DOMAIN: usize = 253;
    pub const SHORT: usize = 100;
    pub const ID: usize = 128;
    pub const CUSTOM_ENTRIES: usize = 50;
    pub const CUSTOM_KEY: usize = 64;
    pub const CUSTOM_VALUE: usize = 1000;
    pub const ACTIVITIES: usize = 200;
    pub const NOTE: usize = 2000;
}

/// One problem with one field. Serialized as-is into HTTP error bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Dotted path of the field, e.g. `contact.email`.
    pub field: String,
    /// Stable, machine-readable code: `required`, `invalid`, `too_long`, `unknown_field`, ...
    pub code: &'static str,
    /// A sentence for humans.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    pub fn required(field: &str) -> Self {
        Self::new(field, "required", format!("{field} is required"))
    }

    pub fn too_long(field: &str, max: usize) -> Self {
        Self::new(
            field,
            "too_long",
            format!("{field} must be at most {max} characters"),
        )
    }

    pub fn control_character(field: &str, lines: Lines) -> Self {
        let message = match lines {
            Lines::One => format!("{field} must not contain control characters"),
            Lines::Many => format!(
                "{field} must not contain control characters other than line breaks and tabs"
            ),
        };
        Self::new(field, "control_character", message)
    }
}

/// Whether a text field may span lines.
///
/// Control characters (NUL, escape, DEL, C1, ...) are never data in a lead: they break CSV
/// exports, CRM fields and terminals, and a NUL truncates strings in C-based consumers. Only
/// free text may hold line breaks and tabs: custom attribute values (a form's "message"
/// textarea lands there), activity details and disposition notes. Everything else (names,
/// email, phone, company, source, ids, attribute names) is one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    One,
    Many,
}

/// `true` if `value` holds a control character not allowed in a field of this kind.
pub fn has_control_character(value: &str, lines: Lines) -> bool {
    value
        .chars()
        .any(|c| c.is_control() && !(lines == Lines::Many && matches!(c, '\n' | '\r' | '\t')))
}

/// Every problem found in one input, so a client can fix them all in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{} ({})", e.field, e.code))
            .collect();
        write!(f, "invalid fields: {}", fields.join(", "))
    }
}

/// Collects field errors while normalizing.
#[derive(Debug, Default)]
pub struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Trims `value` in place and checks its length and that it is one line without
    /// control characters.
    pub fn text(&mut self, field: &str, value: &mut String, max: usize) {
        self.checked_text(field, value, max, Lines::One);
    }

    /// As [`Self::text`], for free text: line breaks and tabs are allowed.
    pub fn free_text(&mut self, field: &str, value: &mut String, max: usize) {
        self.checked_text(field, value, max, Lines::Many);
    }

    /// Pushes a `control_character` error and returns `false` when `value` has one.
    pub fn no_control_characters(&mut self, field: &str, value: &str, lines: Lines) -> bool {
        if has_control_character(value, lines) {
            self.push(FieldError::control_character(field, lines));
            false
        } else {
            true
        }
    }

    fn checked_text(&mut self, field: &str, value: &mut String, max: usize, lines: Lines) {
        let trimmed = value.trim();
        if trimmed.len() != value.len() {
            *value = trimmed.to_owned();
        }
        if !self.no_control_characters(field, value, lines) {
            return;
        }
        if value.chars().count() > max {
            self.push(FieldError::too_long(field, max));
        }
    }

    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

/// Lower-cases and checks an email address. Deliberately structural (one `@`, a dotted
/// domain, no spaces): deliverability is the CRM's business, not the router's.
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if email.len() > limits::EMAIL {
        return Err("too_long");
    }
    let (local, domain) = email.split_once('@').ok_or("invalid")?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains(char::is_whitespace)
        && !local.contains('@');
    if domain_ok && local_ok {
        Ok(email)
    } else {
        Err("invalid")
    }
}

/// Any ISO 3166-1 form (alpha-2, alpha-3, English name or alias) -> alpha-2, upper case.
pub fn normalize_country(raw: &str) -> Option<String> {
    let compact: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .collect();
    if compact.is_empty() {
        return None;
    }
    // "UK" is not ISO but is what people type; GB is its code.
    if compact.eq_ignore_ascii_case("uk") {
        return Some("GB".to_owned());
    }
    celes::Country::from_str(&compact)
        .ok()
        .map(|c| c.alpha2.to_uppercase())
}

/// Digits with an optional leading `+`; 7 to 15 digits (E.164 bounds).
pub fn normalize_phone(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim();
    let plus = trimmed.starts_with('+');
    let mut digits = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '(' | ')' | '.' | '/' => {}
            '+' if digits.is_empty() => {}
            _ => return Err("invalid"),
        }
    }
    if !(7..=15).contains(&digits.len()) {
        return Err("invalid");
    }
    Ok(if plus { format!("+{digits}") } else { digits })
}

/// `https://www.Example.com/about` -> `example.com`.
pub fn normalize_domain(raw: &str) -> Result<String, &'static str> {
    let lower = raw.trim().to_lowercase();
    let without_scheme = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    let host = without_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    // Every leading `www.` goes, as long as a domain is left: normalizing a normalized
    // domain must change nothing (the router checks ingest's leads again).
    let mut host = host;
    while let Some(rest) = host.strip_prefix("www.").filter(|rest| rest.contains('.')) {
        host = rest;
    }
    if host.is_empty()
        || !host.contains('.')
        || host.len() > limits::DOMAIN
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err("invalid");
    }
    Ok(host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email("  Jane.Doe@Example.COM "),
            Ok("jane.doe@example.com".to_owned())
        );
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "ja ne@example.com",
        ] {
            assert_eq!(normalize_email(bad), Err("invalid"), "{bad}");
        }
    }

    #[test]
    fn countries_become_alpha2() {
        assert_eq!(normalize_country("de"), Some("DE".to_owned()));
        assert_eq!(normalize_country("DEU"), Some("DE".to_owned()));
        assert_eq!(normalize_country("Germany"), Some("DE".to_owned()));
        assert_eq!(normalize_country("United Kingdom"), Some("GB".to_owned()));
        assert_eq!(normalize_country("uk"), Some("GB".to_owned()));
        assert_eq!(normalize_country("Atlantis"), None);
    }

    #[test]
    fn phones_keep_digits_and_plus() {
        assert_eq!(
            normalize_phone("+49 (151) 123-4567"),
            Ok("+491511234567".to_owned())
        );
        assert_eq!(normalize_phone("12"), Err("invalid"));
        assert_eq!(normalize_phone("call me"), Err("invalid"));
    }

    #[test]
    fn domains_lose_scheme_www_and_path() {
        assert_eq!(
            normalize_domain("https://www.Acme.io/about"),
            Ok("acme.io".to_owned())
        );
        assert_eq!(normalize_domain("acme"), Err("invalid"));
        // Idempotent, so the router's second check of a lead changes nothing.
        assert_eq!(
            normalize_domain("www.www.acme.io"),
            Ok("acme.io".to_owned())
        );
        assert_eq!(normalize_domain("www.com"), Ok("www.com".to_owned()));
    }
}
