//! What a web form or an integration submits, and how it becomes a valid [`Lead`].
//!
//! Parse, don't validate: a `Lead` that leaves [`LeadSubmission::into_lead`] is normalized
//! (trimmed, lower-cased email, alpha-2 country, bounded lengths) and the rest of the
//! system never checks it again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::lead::{Company, Contact, Engagement, Lead, LeadId, Source};
use crate::validation::{
    limits, normalize_country, normalize_domain, normalize_email, normalize_phone, Checker,
    FieldError, Lines, ValidationErrors,
};

/// The JSON body of `POST /v1/leads`: a [`Lead`] without the fields the system assigns
/// (`id` and `received_at` may be brought by trusted integrations that already have them;
/// ingest drops them for everyone else).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeadSubmission {
    /// Trusted keys only (imports, CRM syncs); ignored for everyone else.
    #[serde(default)]
    pub id: Option<String>,
    /// Trusted keys only; ignored for everyone else, whose leads are received now.
    #[serde(default)]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub source: Source,
    /// `contact.email` is required.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub contact: Contact,
    #[serde(default)]
    pub company: Company,
    #[serde(default)]
    pub engagement: Engagement,
    /// Attributes of your own to route on (at most 50; names 1 to 64 characters,
    /// values up to 1000).
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// The fields of a plain HTML form post (`application/x-www-form-urlencoded`), as
/// [`LeadSubmission::from_form`] reads them; documentation only (a form is read as pairs).
/// Any other field becomes a custom attribute (`custom.NAME`, `custom[NAME]` or a bare
/// name).
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
pub struct LeadForm {
    /// The form's public token (or the `form_token` query parameter; or an API key).
    pub form_token: Option<String>,
    #[schema(required = true)]
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    /// Also `job_title`.
    pub title: Option<String>,
    /// The company's name; also `company_name`.
    pub company: Option<String>,
    /// Also `website`.
    pub company_domain: Option<String>,
    #[schema(format = "uint32", maximum = 4294967295_u32)]
    pub employees: Option<u32>,
    pub industry: Option<String>,
    /// ISO 3166-1 alpha-2, alpha-3 or English name.
    pub country: Option<String>,
    /// Also `state`.
    pub region: Option<String>,
    /// Also `zip`.
    pub postal_code: Option<String>,
    /// The source kind (default `web_form`); also `source_kind`.
    pub source: Option<String>,
    pub campaign: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    /// `1`, `true`, `on` or `yes` for a demo request.
    pub demo_request: Option<String>,
    #[schema(format = "uint32", maximum = 4294967295_u32)]
    pub pricing_page_views: Option<u32>,
    #[schema(format = "uint32", maximum = 4294967295_u32)]
    pub content_downloads: Option<u32>,
    #[schema(format = "uint32", maximum = 4294967295_u32)]
    pub webinars_attended: Option<u32>,
}

impl LeadSubmission {
    /// Builds a submission from `application/x-www-form-urlencoded` pairs, the flat shape
    /// HTML forms send. Known names map onto the lead; `custom.NAME` or `custom[NAME]` go to
    /// custom attributes; any other field is kept as a custom attribute too, because forms
    /// carry fields (hidden inputs, buttons) that a marketer may still want to route on.
    pub fn from_form(pairs: Vec<(String, String)>) -> Result<Self, ValidationErrors> {
        let mut s = Self::default();
        let mut errors = Vec::new();
        for (key, value) in pairs {
            let count = |field: &str, errors: &mut Vec<FieldError>| -> u32 {
                parse_count(field, &value, errors)
            };
            match key.as_str() {
                "id" | "lead_id" => s.id = Some(value),
                "email" => s.contact.email = value,
                "first_name" => s.contact.first_name = value,
                "last_name" => s.contact.last_name = value,
                "phone" => s.contact.phone = value,
                "title" | "job_title" => s.contact.title = value,
                "company" | "company_name" => s.company.name = value,
                "company_domain" | "website" => s.company.domain = value,
                "employees" => {
                    if !value.trim().is_empty() {
                        s.company.employees = Some(count("company.employees", &mut errors));
                    }
                }
                "industry" => s.company.industry = value,
                "country" => s.company.country = value,
                "region" | "state" => s.company.region = value,
                "postal_code" | "zip" => s.company.postal_code = value,
                "source" | "source_kind" => s.source.kind = value,
                "source_name" | "form" => s.source.name = value,
                "campaign" => s.source.campaign = value,
                "utm_source" => s.source.utm.source = value,
                "utm_medium" => s.source.utm.medium = value,
                "utm_campaign" => s.source.utm.campaign = value,
                "utm_term" => s.source.utm.term = value,
                "utm_content" => s.source.utm.content = value,
                "demo_request" => s.engagement.demo_request = parse_flag(&value),
                "pricing_page_views" => {
                    s.engagement.pricing_page_views =
                        count("engagement.pricing_page_views", &mut errors)
                }
                "content_downloads" => {
                    s.engagement.content_downloads =
                        count("engagement.content_downloads", &mut errors)
                }
                "webinars_attended" => {
                    s.engagement.webinars_attended =
                        count("engagement.webinars_attended", &mut errors)
                }
                other => {
                    let name = other
                        .strip_prefix("custom.")
                        .or_else(|| {
                            other
                                .strip_prefix("custom[")
                                .and_then(|k| k.strip_suffix(']'))
                        })
                        .unwrap_or(other);
                    s.custom.insert(name.to_owned(), value);
                }
            }
        }
        if s.source.kind.is_empty() {
            s.source.kind = "web_form".to_owned();
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Normalizes and validates into a [`Lead`]; `received_at` is the ingest time.
    pub fn into_lead(self, received_at: DateTime<Utc>) -> Result<Lead, ValidationErrors> {
        let id = match self.id.map(|id| id.trim().to_owned()) {
            Some(id) if !id.is_empty() => LeadId::from(id),
            _ => LeadId::generate(),
        };
        let mut lead = Lead {
            id,
            received_at,
            source: self.source,
            contact: self.contact,
            company: self.company,
            engagement: self.engagement,
            custom: self.custom,
        };
        if lead.source.kind.trim().is_empty() {
            lead.source.kind = "api".to_owned();
        }
        normalize(&mut lead)?;
        Ok(lead)
    }
}

/// Checks a lead that arrived from another producer on `lead.created`: the same rules as
/// ingest, applied to a copy so the caller can tell "invalid" from "not normalized".
pub fn check_lead(lead: &Lead) -> Result<Lead, ValidationErrors> {
    let mut copy = lead.clone();
    normalize(&mut copy)?;
    Ok(copy)
}

fn normalize(lead: &mut Lead) -> Result<(), ValidationErrors> {
    let mut c = Checker::default();
    let id = lead.id.as_str();
    if c.no_control_characters("id", id, Lines::One) && (id.len() > limits::ID || id.contains(' '))
    {
        c.push(FieldError::new(
            "id",
            "invalid",
            format!(
                "id must be at most {} characters without spaces",
                limits::ID
            ),
        ));
    }

    let contact = &mut lead.contact;
    if contact.email.trim().is_empty() {
        c.push(FieldError::required("contact.email"));
    } else if c.no_control_characters("contact.email", contact.email.trim(), Lines::One) {
        match normalize_email(&contact.email) {
            Ok(email) => contact.email = email,
            Err("too_long") => c.push(FieldError::too_long("contact.email", limits::EMAIL)),
            Err(_) => c.push(FieldError::new(
                "contact.email",
                "invalid",
                "contact.email is not an email address",
            )),
        }
    }
    c.text("contact.first_name", &mut contact.first_name, limits::NAME);
    c.text("contact.last_name", &mut contact.last_name, limits::NAME);
    c.text("contact.title", &mut contact.title, limits::TITLE);
    if contact.phone.trim().is_empty() {
        contact.phone.clear();
    } else if c.no_control_characters("contact.phone", contact.phone.trim(), Lines::One) {
        match normalize_phone(&contact.phone) {
            Ok(phone) => contact.phone = phone,
            Err(_) => c.push(FieldError::new(
                "contact.phone",
                "invalid",
                "contact.phone must hold 7 to 15 digits, optionally with a leading +",
            )),
        }
    }

    let company = &mut lead.company;
    c.text("company.name", &mut company.name, limits::COMPANY);
    if company.domain.trim().is_empty() {
        company.domain.clear();
    } else if c.no_control_characters("company.domain", company.domain.trim(), Lines::One) {
        match normalize_domain(&company.domain) {
            Ok(domain) => company.domain = domain,
            Err(_) => c.push(FieldError::new(
                "company.domain",
                "invalid",
                "company.domain must be a host name such as example.com",
            )),
        }
    }
    c.text("company.industry", &mut company.industry, limits::SHORT);
    c.text("company.region", &mut company.region, limits::SHORT);
    c.text("company.postal_code", &mut company.postal_code, 16);
    if company.country.trim().is_empty() {
        company.country.clear();
    } else if c.no_control_characters("company.country", company.country.trim(), Lines::One) {
        match normalize_country(&company.country) {
            Some(code) => company.country = code,
            None => c.push(FieldError::new(
                "company.country",
                "invalid",
                "company.country must be an ISO 3166-1 country (alpha-2, alpha-3 or English name)",
            )),
        }
    }

    let source = &mut lead.source;
    c.text("source.kind", &mut source.kind, limits::SHORT);
    c.text("source.name", &mut source.name, limits::SHORT);
    c.text("source.campaign", &mut source.campaign, limits::SHORT);
    c.text("source.utm.source", &mut source.utm.source, limits::SHORT);
    c.text("source.utm.medium", &mut source.utm.medium, limits::SHORT);
    c.text(
        "source.utm.campaign",
        &mut source.utm.campaign,
        limits::SHORT,
    );
    c.text("source.utm.term", &mut source.utm.term, limits::SHORT);
    c.text("source.utm.content", &mut source.utm.content, limits::SHORT);

    if lead.engagement.activities.len() > limits::ACTIVITIES {
        c.push(FieldError::new(
            "engagement.activities",
            "too_many",
            format!("at most {} activities", limits::ACTIVITIES),
        ));
    }
    for (i, activity) in lead.engagement.activities.iter_mut().enumerate() {
        c.text(
            &format!("engagement.activities[{i}].kind"),
            &mut activity.kind,
            limits::SHORT,
        );
        c.free_text(
            &format!("engagement.activities[{i}].detail"),
            &mut activity.detail,
            limits::CUSTOM_VALUE,
        );
    }

    if lead.custom.len() > limits::CUSTOM_ENTRIES {
        c.push(FieldError::new(
            "custom",
            "too_many",
            format!("at most {} custom attributes", limits::CUSTOM_ENTRIES),
        ));
    }
    for (key, value) in &lead.custom {
        let field = format!("custom.{key}");
        if !c.no_control_characters(&field, key, Lines::One) {
            // The name is unusable; its value is not worth checking.
            continue;
        }
        if key.is_empty() || key.len() > limits::CUSTOM_KEY {
            c.push(FieldError::new(
                field.as_str(),
                "invalid",
                format!(
                    "custom attribute names are 1 to {} characters",
                    limits::CUSTOM_KEY
                ),
            ));
        }
        if c.no_control_characters(&field, value, Lines::Many)
            && value.chars().count() > limits::CUSTOM_VALUE
        {
            c.push(FieldError::too_long(&field, limits::CUSTOM_VALUE));
        }
    }
    c.finish()
}

fn parse_count(field: &str, value: &str, errors: &mut Vec<FieldError>) -> u32 {
    match value.trim().parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "invalid",
                format!("{field} must be a whole number ≥ 0"),
            ));
            0
        }
    }
}

fn parse_flag(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "on" | "yes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_form_becomes_a_normalized_lead() {
        let form = pairs(&[
            ("email", "  Jane@Acme.IO "),
            ("company", "Acme"),
            ("country", "Germany"),
            ("employees", "250"),
            ("utm_campaign", "spring"),
            ("demo_request", "on"),
            ("custom[plan]", "enterprise"),
            ("submit", "Send"),
        ]);
        let lead = LeadSubmission::from_form(form)
            .and_then(|s| s.into_lead(Utc::now()))
            .map_err(|e| e.to_string());
        let lead = match lead {
            Ok(lead) => lead,
            Err(e) => panic!("valid form rejected: {e}"),
        };
        assert_eq!(lead.contact.email, "jane@acme.io");
        assert_eq!(lead.company.country, "DE");
        assert_eq!(lead.company.employees, Some(250));
        assert_eq!(lead.source.kind, "web_form");
        assert_eq!(lead.source.utm.campaign, "spring");
        assert!(lead.engagement.demo_request);
        assert_eq!(
            lead.custom.get("plan").map(String::as_str),
            Some("enterprise")
        );
        assert_eq!(lead.custom.get("submit").map(String::as_str), Some("Send"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let submission = LeadSubmission {
            contact: Contact {
                email: "not-an-email".into(),
                first_name: "x".repeat(500),
                phone: "12".into(),
                ..Contact::default()
            },
            company: Company {
                country: "Atlantis".into(),
                ..Company::default()
            },
            ..LeadSubmission::default()
        };
        let errors = match submission.into_lead(Utc::now()) {
            Ok(_) => panic!("invalid lead accepted"),
            Err(e) => e.0,
        };
        let fields: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            fields,
            vec![
                ("contact.email", "invalid"),
                ("contact.first_name", "too_long"),
                ("contact.phone", "invalid"),
                ("company.country", "invalid"),
            ]
        );
    }

    #[test]
    fn email_is_required() {
        let errors = LeadSubmission::default().into_lead(Utc::now()).err();
        assert_eq!(
            errors.map(|e| e.0[0].clone()),
            Some(FieldError::required("contact.email"))
        );
    }

    fn field_errors(submission: LeadSubmission) -> Vec<(String, &'static str)> {
        match submission.into_lead(Utc::now()) {
            Ok(lead) => panic!("accepted: {lead:?}"),
            Err(e) => e.0.into_iter().map(|f| (f.field, f.code)).collect(),
        }
    }

    #[test]
    fn a_nul_byte_in_the_email_is_a_control_character_error() {
        let submission = LeadSubmission {
            contact: Contact {
                email: "a\0@b.de".into(),
                ..Contact::default()
            },
            ..LeadSubmission::default()
        };
        assert_eq!(
            field_errors(submission),
            [("contact.email".to_owned(), "control_character")]
        );
    }

    #[test]
    fn control_characters_are_named_in_every_one_line_field() {
        let bad = "x\u{7}y";
        let submission = LeadSubmission {
            id: Some("lead\u{1b}1".into()),
            received_at: None,
            source: Source {
                kind: bad.into(),
                name: bad.into(),
                campaign: bad.into(),
                utm: crate::lead::Utm {
                    source: bad.into(),
                    medium: bad.into(),
                    campaign: bad.into(),
                    term: bad.into(),
                    content: bad.into(),
                },
            },
            contact: Contact {
                email: "a@b.de".into(),
                first_name: "Ja\nne".into(),
                last_name: bad.into(),
                phone: "+49 151\u{0}1234567".into(),
                title: "V\u{85}P".into(),
            },
            company: Company {
                name: bad.into(),
                domain: "acme\u{7f}.io".into(),
                employees: None,
                industry: bad.into(),
                country: "D\u{0}E".into(),
                region: bad.into(),
                postal_code: "80\r331".into(),
            },
            engagement: Engagement {
                activities: vec![crate::lead::Activity {
                    kind: "view\tpage".into(),
                    at: Utc::now(),
                    detail: "fine".into(),
                }],
                ..Engagement::default()
            },
            custom: [
                ("bad\u{0}name".to_owned(), "x".to_owned()),
                ("message".to_owned(), "x\u{0}".to_owned()),
            ]
            .into(),
        };
        let fields: Vec<String> = field_errors(submission)
            .into_iter()
            .map(|(field, code)| {
                assert_eq!(code, "control_character", "{field}");
                field
            })
            .collect();
        assert_eq!(
            fields,
            [
                "id",
                "contact.first_name",
                "contact.last_name",
                "contact.title",
                "contact.phone",
                "company.name",
                "company.domain",
                "company.industry",
                "company.region",
                "company.postal_code",
                "company.country",
                "source.kind",
                "source.name",
                "source.campaign",
                "source.utm.source",
                "source.utm.medium",
                "source.utm.campaign",
                "source.utm.term",
                "source.utm.content",
                "engagement.activities[0].kind",
                "custom.bad\u{0}name",
                "custom.message",
            ]
        );
    }

    #[test]
    fn free_text_keeps_its_line_breaks_and_tabs() {
        let submission = LeadSubmission {
            contact: Contact {
                email: "a@b.de".into(),
                // Surrounding whitespace (a pasted trailing newline) is trimmed, not refused.
                first_name: " Jane\n".into(),
                ..Contact::default()
            },
            engagement: Engagement {
                activities: vec![crate::lead::Activity {
                    kind: "chat".into(),
                    at: Utc::now(),
                    detail: "line one\r\n\tline two".into(),
                }],
                ..Engagement::default()
            },
            custom: [("message".to_owned(), "Hello,\nplease call me.".to_owned())].into(),
            ..LeadSubmission::default()
        };
        let lead = match submission.into_lead(Utc::now()) {
            Ok(lead) => lead,
            Err(e) => panic!("rejected: {e}"),
        };
        assert_eq!(lead.contact.first_name, "Jane");
        assert_eq!(
            lead.engagement.activities[0].detail,
            "line one\r\n\tline two"
        );
        assert_eq!(lead.custom["message"], "Hello,\nplease call me.");
    }

    #[test]
    fn a_bad_count_in_a_form_is_named() {
        let errors = LeadSubmission::from_form(pairs(&[("employees", "lots")])).err();
        assert_eq!(
            errors.map(|e| e.0[0].field.clone()),
            Some("company.employees".to_owned())
        );
    }
}
