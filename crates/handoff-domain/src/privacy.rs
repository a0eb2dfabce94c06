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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_no_more_than_a_hint() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
