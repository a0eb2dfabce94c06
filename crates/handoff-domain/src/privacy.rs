//! Personal data never reaches the logs in clear: these helpers give a log-safe form.

/// `jane.doe@example.com` -> `j***@example.com`. The domain stays: it is company data and
/// what an operator needs to debug routing.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// A serde error message without the input values it quotes, for logs and dead-letter
/// headers: `invalid type: string "jane@example.com", expected u32` becomes `invalid type:
/// string, expected u32`. Field names (`unknown field `x``) stay: they come from the schema
/// or the producer's keys, and are what an operator needs to fix the producer.
pub fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // serde writes the value first, then its own ", expected …": the last one is serde's.
            return match rest.rsplit_once(", expected ") {
                Some((found, expected)) => {
                    format!("{prefix}{}, expected {expected}", kind_of(found))
                }
                None => format!("{prefix}[redacted]"),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        return match rest.rsplit_once("`, expected ") {
            Some((_, expected)) => format!("unknown variant, expected {expected}"),
            None => "unknown variant".to_owned(),
        };
    }
    message.to_owned()
}

/// `string "…"` -> `string`, ``integer `5` `` -> `integer`; `map`, `null` stay as they are.
fn kind_of(found: &str) -> &str {
    match found.split_once(['`', '"']) {
        Some((kind, _)) => kind.trim_end(),
        None if found.chars().all(|c| c.is_ascii_lowercase() || c == ' ') => found,
        None => "[redacted]",
    }
}

/// Text that looks like an email address: something on both sides of an `@`.
pub fn looks_like_email(value: &str) -> bool {
    value
        .split_once('@')
        .is_some_and(|(local, domain)| !local.trim().is_empty() && !domain.trim().is_empty())
}

/// 8 to 15 digits (E.164's most), optionally with `+` and the usual separators. Shorter
/// runs are postal codes and counts.
pub fn looks_like_phone(value: &str) -> bool {
    let mut digits = 0;
    for c in value.trim().chars() {
        match c {
            '0'..='9' => digits += 1,
            '+' | ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return false,
        }
    }
    (8..=15).contains(&digits)
}

/// Keys whose values are a person's details, in any event payload (`Contact`,
/// `LeadSummary`, a disposition's note) or a form post's field names.
const PERSONAL_KEYS: [&str; 8] = [
    "first_name",
    "last_name",
    "firstName",
    "lastName",
    "full_name",
    "phone",
    "note",
    "notes",
];

/// A JSON payload as an operator may see it (`handoff dlq show`): `email` values masked
/// like the logs mask them (`j***@example.com`), names, phone numbers and notes replaced by
/// `[redacted]`, and any other string that looks like an email address or a phone number
/// (a custom attribute, a company name someone typed their address into) redacted too.
/// Keys, ids, times and company data stay: what an operator needs to see why it failed.
pub fn mask_personal_data(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match field {
                    Value::String(text) if key == "email" => *text = mask_email(text),
                    Value::String(text) if PERSONAL_KEYS.contains(&key.as_str()) => {
                        *text = "[redacted]".to_owned();
                    }
                    Value::Number(_) if key == "phone" => {
                        *field = Value::String("[redacted]".to_owned());
                    }
                    _ => mask_personal_data(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_personal_data),
        Value::String(text) if looks_like_email(text) || looks_like_phone(text) => {
            *text = "[redacted]".to_owned();
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_lose_the_persons_details_and_keep_the_rest() {
        let mut payload = serde_json::json!({
            "id": "lead-1",
            "contact": {"email": "jane.doe@example.com", "first_name": "Jane", "lastName": "Doe", "phone": "+49 30 1234567", "title": "VP Sales"},
            "company": {"name": "Acme", "country": "DE", "employees": 2500},
            "attributes": {"backup": "jane@home.example", "mobile": "0170 1234 5678", "zip": "10115"},
            "lead": {"phone": 4930123456_u64},
            "note": "called Jane"
        });
        mask_personal_data(&mut payload);
        assert_eq!(
            payload,
            serde_json::json!({
                "id": "lead-1",
                "contact": {"email": "j***@example.com", "first_name": "[redacted]", "lastName": "[redacted]", "phone": "[redacted]", "title": "VP Sales"},
                "company": {"name": "Acme", "country": "DE", "employees": 2500},
                "attributes": {"backup": "[redacted]", "mobile": "[redacted]", "zip": "10115"},
                "lead": {"phone": "[redacted]"},
                "note": "[redacted]"
            })
        );
    }

    #[test]
    fn serde_messages_lose_the_values_they_quote() {
        let cases = [
            (
                "invalid type: string \"jane@example.com\", expected u32 at line 1 column 40",
                "invalid type: string, expected u32 at line 1 column 40",
            ),
            (
                "invalid type: integer `4917055501990`, expected a string at line 1 column 9",
                "invalid type: integer, expected a string at line 1 column 9",
            ),
            (
                "invalid value: string \"a, expected b\", expected a date",
                "invalid value: string, expected a date",
            ),
            (
                "invalid type: floating point `1.5`, expected u32",
                "invalid type: floating point, expected u32",
            ),
            (
                "invalid type: null, expected a string",
                "invalid type: null, expected a string",
            ),
            (
                "unknown variant `jane@example.com`, expected one of `accepted`, `rejected`",
                "unknown variant, expected one of `accepted`, `rejected`",
            ),
            (
                "unknown field `favourite_colour`, expected one of `id`, `contact`",
                "unknown field `favourite_colour`, expected one of `id`, `contact`",
            ),
            ("invalid type: Jane Doe", "invalid type: [redacted]"),
        ];
        for (message, expected) in cases {
            assert_eq!(without_values(message), expected, "{message}");
        }
    }

    #[test]
    fn masks_keep_no_more_than_a_hint() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
