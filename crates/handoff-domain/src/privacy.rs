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

#[cfg(test)]
mod tests {
    use super::*;

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
