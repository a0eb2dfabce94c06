//! What a channel receives. A [`Message`] is what there is to say (the event's headline and
//! fields, the lead's details, the accept/reject links); [`Message::render`] says it for one
//! channel:
//!
//! - JSON webhooks get handoff's signed format (docs/webhooks.md): the event's fields, a
//!   `text` line (simple chat hooks read it), `lead`, `top_reasons` and `links`.
//! - Slack-compatible webhooks get Block Kit: the same `text` as the fallback shown in
//!   notifications, and `blocks` (header, section, fields, context, URL buttons).
//!
//! Contact details (email, phone) appear only where the channel allows them: a rep's own
//! channel always, a team or manager channel only with `contact_details = true`. Links
//! only ever go to the assignee's own channel (a link acts as the rep).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use handoff_domain::events::{
    LeadAssigned, LeadDisposition, LeadSummary, SlaBreached, SlaReminder,
};
use handoff_domain::lead::Source;
use handoff_domain::routing::{Channel, ChannelFormat};
use handoff_domain::scoring::Score;
use handoff_domain::sla::Sla;

use crate::links::ActionLinks;

/// How many score contributions a message lists ("why this score").
const TOP_REASONS: usize = 3;
/// Slack refuses a header longer than this.
const HEADER_MAX_CHARS: usize = 150;

/// What is known of the lead besides the event: from `lead.assigned` (its own, or the
/// lead's current one in Redis for reminders and breaches).
#[derive(Debug, Clone, Default)]
pub(crate) struct LeadFacts {
    pub(crate) summary: Option<LeadSummary>,
    pub(crate) score: Option<Score>,
    pub(crate) source: Option<Source>,
}

impl LeadFacts {
    pub(crate) fn of_assignment(event: &LeadAssigned) -> Self {
        Self {
            summary: event.lead.clone(),
            score: Some(event.score.clone()),
            source: Some(event.source.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// The event's own fields, as receivers have always had them (`type`, `text`, ...).
    fields: Map<String, Value>,
    /// The one line of the message (`text`, and the Slack fallback).
    headline: String,
    /// The Slack header.
    title: String,
    lead_id: String,
    attempt: u32,
    due_at: Option<DateTime<Utc>>,
    facts: LeadFacts,
    links: Option<ActionLinks>,
}

pub(crate) fn assigned(event: &LeadAssigned) -> Message {
    let text = format!(
        "New lead for {rep} (team {team}): score {points} ({band}). First touch due by {due} UTC. Why: {reason}",
        rep = event.rep_id,
        team = event.team_id,
        points = event.score.points,
        band = event.score.band,
        due = event.first_touch_due_at.format("%H:%M:%S"),
        reason = event.explanation.reason,
    );
    let fields = json!({
        "type": "lead.assigned",
        "event_id": event.event_id(),
        "text": text,
        "lead_id": event.lead_id,
        "team_id": event.team_id,
        "rep_id": event.rep_id,
        "attempt": event.attempt,
        "first_touch_due_at": event.first_touch_due_at,
        "score": event.score,
        "explanation": event.explanation,
        "source": event.source,
    });
    let title = if event.attempt > 1 {
        "Lead reassigned to you"
    } else {
        "New lead for you"
    };
    Message::new(
        fields,
        text,
        title,
        event.lead_id.as_str(),
        event.attempt,
        Some(event.first_touch_due_at),
        LeadFacts::of_assignment(event),
    )
}

pub(crate) fn breached(event: &SlaBreached, facts: LeadFacts) -> Message {
    let team = event.team_id.as_ref().map_or("none", |t| t.as_str());
    let text = match (&event.rep_id, event.sla) {
        (Some(rep), Sla::Disposition) => format!(
            ":warning: Disposition SLA missed: lead {lead} with {rep} (team {team}) had no outcome reported by {due} UTC.",
            lead = event.lead_id,
            due = event.due_at.format("%Y-%m-%d %H:%M:%S"),
        ),
        (Some(rep), Sla::FirstTouch) => format!(
            ":warning: First-touch SLA missed: lead {lead} assigned to {rep} (team {team}) was due at {due} UTC.",
            lead = event.lead_id,
            due = event.due_at.format("%H:%M:%S"),
        ),
        (None, _) => format!(
            ":warning: First-touch SLA missed: lead {lead} is still waiting in a queue of team {team}; it was due at {due} UTC.",
            lead = event.lead_id,
            due = event.due_at.format("%H:%M:%S"),
        ),
    };
    let fields = json!({
        "type": "sla.breached",
        "event_id": event.event_id(),
        "text": text,
        "lead_id": event.lead_id,
        "team_id": event.team_id,
        "rep_id": event.rep_id,
        "attempt": event.attempt,
        "due_at": event.due_at,
        "breached_at": event.breached_at,
        "sla": event.sla,
    });
    let title = match event.sla {
        Sla::FirstTouch => "First-touch SLA missed",
        Sla::Disposition => "Disposition SLA missed",
    };
    Message::new(
        fields,
        text,
        title,
        event.lead_id.as_str(),
        event.attempt,
        Some(event.due_at),
        facts,
    )
}

pub(crate) fn reminder(event: &SlaReminder, facts: LeadFacts) -> Message {
    let what = match event.sla {
        Sla::FirstTouch => "First touch",
        Sla::Disposition => "An outcome (accepted, converted, rejected with a reason, recycled)",
    };
    let text = format!(
        ":alarm_clock: Reminder: {what} for lead {lead} is due by {due} UTC ({percent}% of the time gone).",
        lead = event.lead_id,
        due = event.due_at.format("%Y-%m-%d %H:%M:%S"),
        percent = (event.fraction * 100.0).round(),
    );
    let fields = json!({
        "type": "sla.reminder",
        "event_id": event.event_id(),
        "text": text,
        "lead_id": event.lead_id,
        "team_id": event.team_id,
        "rep_id": event.rep_id,
        "attempt": event.attempt,
        "sla": event.sla,
        "due_at": event.due_at,
        "reminded_at": event.reminded_at,
        "fraction": event.fraction,
    });
    let title = match event.sla {
        Sla::FirstTouch => "Reminder: first touch due",
        Sla::Disposition => "Reminder: outcome due",
    };
    Message::new(
        fields,
        text,
        title,
        event.lead_id.as_str(),
        event.attempt,
        Some(event.due_at),
        facts,
    )
}

/// A missed first touch the team's policy escalated: for the manager.
pub(crate) fn escalated(event: &LeadDisposition, facts: LeadFacts) -> Message {
    let team = event.team_id.as_ref().map_or("none", |t| t.as_str());
    let text = format!(
        ":rotating_light: Lead {lead} escalated out of team {team}: {note}",
        lead = event.lead_id,
        note = event.note,
    );
    let fields = json!({
        "type": "lead.escalated",
        "text": text,
        "lead_id": event.lead_id,
        "team_id": event.team_id,
        "rep_id": event.rep_id,
        "reason_code": event.reason_code,
        "note": event.note,
        "occurred_at": event.occurred_at,
        "source": event.source,
    });
    Message::new(
        fields,
        text,
        "Lead escalated",
        event.lead_id.as_str(),
        0,
        None,
        facts,
    )
}

impl Message {
    fn new(
        fields: Value,
        headline: String,
        title: &str,
        lead_id: &str,
        attempt: u32,
        due_at: Option<DateTime<Utc>>,
        facts: LeadFacts,
    ) -> Self {
        let fields = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let title = match facts.summary.as_ref().and_then(LeadSummary::name) {
            Some(name) => format!("{title}: {name}"),
            None => title.to_owned(),
        };
        Self {
            fields,
            headline,
            title,
            lead_id: lead_id.to_owned(),
            attempt,
            due_at,
            facts,
            links: None,
        }
    }

    pub(crate) fn with_links(mut self, links: Option<ActionLinks>) -> Self {
        self.links = links;
        self
    }

    /// The body for `channel`: its format, and contact details only where it allows them.
    pub(crate) fn render(&self, channel: &Channel) -> Value {
        let contact = channel.contact_details;
        match channel.format {
            ChannelFormat::Json => self.json(contact),
            ChannelFormat::Slack => self.blocks(contact),
        }
    }

    /// The lead's line for the `text` fallback: who, never how to reach them.
    fn lead_line(&self) -> Option<String> {
        let summary = self.facts.summary.as_ref()?;
        let mut parts: Vec<String> = Vec::new();
        if let Some(name) = summary.name() {
            parts.push(name);
        }
        for part in [&summary.title, &summary.company] {
            if !part.is_empty() {
                parts.push(part.clone());
            }
        }
        let mut line = parts.join(", ");
        if !summary.country.is_empty() {
            line = format!("{line} ({})", summary.country);
        }
        (!line.trim().is_empty()).then(|| line.trim().to_owned())
    }

    fn top_reasons(&self) -> Vec<(String, i32)> {
        let Some(score) = &self.facts.score else {
            return Vec::new();
        };
        let mut reasons: Vec<(String, i32)> = score
            .contributions
            .iter()
            .map(|c| (c.rule.clone(), c.points))
            .collect();
        // Largest effect first, whichever way it points; ties by name for a stable order.
        reasons.sort_by(|a, b| b.1.abs().cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
        reasons.truncate(TOP_REASONS);
        reasons
    }

    fn text(&self) -> String {
        match self.lead_line() {
            Some(line) => format!("{}\n{line}", self.headline),
            None => self.headline.clone(),
        }
    }

    fn json(&self, contact: bool) -> Value {
        let mut body = self.fields.clone();
        body.insert("text".to_owned(), Value::String(self.text()));
        if let Some(summary) = &self.facts.summary {
            let mut lead = Map::new();
            let mut put = |key: &str, value: &str| {
                if !value.is_empty() {
                    lead.insert(key.to_owned(), Value::String(value.to_owned()));
                }
            };
            put("name", &summary.name().unwrap_or_default());
            put("title", &summary.title);
            put("company", &summary.company);
            put("country", &summary.country);
            if contact {
                put("email", &summary.email);
                put("phone", &summary.phone);
            }
            body.insert("lead".to_owned(), Value::Object(lead));
        }
        if let (Some(score), false) = (&self.facts.score, body.contains_key("score")) {
            body.insert("score".to_owned(), json!(score));
        }
        if let (Some(source), false) = (&self.facts.source, body.contains_key("source")) {
            body.insert("source".to_owned(), json!(source));
        }
        let reasons: Vec<Value> = self
            .top_reasons()
            .into_iter()
            .map(|(rule, points)| json!({"rule": rule, "points": points}))
            .collect();
        if !reasons.is_empty() {
            body.insert("top_reasons".to_owned(), Value::Array(reasons));
        }
        if let Some(links) = &self.links {
            body.insert(
                "links".to_owned(),
                json!({
                    "accept": links.accept,
                    "reject": links.reject,
                    "expires_at": links.expires_at,
                }),
            );
        }
        Value::Object(body)
    }

    /// Block Kit: https://api.slack.com/block-kit. User-supplied text is escaped for mrkdwn.
    fn blocks(&self, contact: bool) -> Value {
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&self.title, HEADER_MAX_CHARS), "emoji": true}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&self.headline)}}),
        ];
        let mut fields: Vec<Value> = Vec::new();
        let mut field = |label: &str, value: &str| {
            if !value.is_empty() {
                fields.push(
                    json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape(value))}),
                );
            }
        };
        if let Some(s) = &self.facts.summary {
            field("Name", &s.name().unwrap_or_default());
            field("Title", &s.title);
            field("Company", &s.company);
            field("Country", &s.country);
            if contact {
                field("Email", &s.email);
                field("Phone", &s.phone);
            }
        }
        if let Some(score) = &self.facts.score {
            field("Score", &format!("{} ({})", score.points, score.band));
        }
        if let Some(source) = &self.facts.source {
            let kind = if source.name.is_empty() {
                source.kind.clone()
            } else {
                format!("{} ({})", source.kind, source.name)
            };
            field("Source", &kind);
            field("Campaign", &source.campaign);
        }
        if let Some(due) = self.due_at {
            field("Due", &due.format("%Y-%m-%d %H:%M UTC").to_string());
        }
        if !fields.is_empty() {
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        let reasons = self.top_reasons();
        if !reasons.is_empty() {
            let list: Vec<String> = reasons
                .iter()
                .map(|(rule, points)| format!("{} ({points:+})", escape(rule)))
                .collect();
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Why this score:* {}", list.join(", "))}}));
        }
        if let Some(links) = &self.links {
            blocks.push(json!({
                "type": "actions",
                "elements": [
                    {"type": "button", "action_id": "accept", "style": "primary",
                     "text": {"type": "plain_text", "text": "Accept"}, "url": links.accept},
                    {"type": "button", "action_id": "reject", "style": "danger",
                     "text": {"type": "plain_text", "text": "Reject"}, "url": links.reject},
                ]
            }));
        }
        let mut context = format!("Lead {}", escape(&self.lead_id));
        if self.attempt > 0 {
            context.push_str(&format!(" · attempt {}", self.attempt));
        }
        if let Some(links) = &self.links {
            context.push_str(&format!(
                " · links work once, until {}",
                links.expires_at.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
        let mut body = Map::new();
        body.insert("text".to_owned(), Value::String(self.text()));
        body.insert("blocks".to_owned(), Value::Array(blocks));
        Value::Object(body)
    }
}

/// Slack's mrkdwn control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use handoff_domain::routing::ChannelKind;
    use handoff_domain::scoring::ScoreContribution;

    fn facts() -> LeadFacts {
        LeadFacts {
            summary: Some(LeadSummary {
                first_name: "Jane".into(),
                last_name: "<Doe>".into(),
                title: "VP".into(),
                company: "Acme & Co".into(),
                country: "DE".into(),
                email: "jane@acme.io".into(),
                phone: "+4915112345678".into(),
            }),
            score: Some(Score {
                points: 55,
                band: "hot".into(),
                qualified: true,
                fast_lane: false,
                contributions: vec![
                    ScoreContribution {
                        rule: "small".into(),
                        points: 5,
                    },
                    ScoreContribution {
                        rule: "free_mail".into(),
                        points: -25,
                    },
                    ScoreContribution {
                        rule: "demo".into(),
                        points: 30,
                    },
                    ScoreContribution {
                        rule: "title".into(),
                        points: 20,
                    },
                ],
                model_version: String::new(),
            }),
            source: Some(Source {
                kind: "web_form".into(),
                campaign: "spring".into(),
                ..Source::default()
            }),
        }
    }

    fn message() -> Message {
        Message::new(
            json!({"type": "sla.breached", "text": "x"}),
            "Missed".into(),
            "SLA missed",
            "lead-1",
            1,
            None,
            facts(),
        )
        .with_links(Some(ActionLinks {
            accept: "https://l.example/v1/actions/a".into(),
            reject: "https://l.example/v1/actions/r".into(),
            expires_at: Utc::now(),
        }))
    }

    fn channel(kind: ChannelKind, format: ChannelFormat, contact_details: bool) -> Channel {
        Channel {
            kind,
            url: "https://x.example".into(),
            format,
            contact_details,
        }
    }

    #[test]
    fn contact_details_only_where_the_channel_allows_them() {
        for format in [ChannelFormat::Json, ChannelFormat::Slack] {
            let team = message()
                .render(&channel(ChannelKind::Team, format, false))
                .to_string();
            assert!(
                !team.contains("jane@acme.io") && !team.contains("4915112345678"),
                "{team}"
            );
            let rep = message()
                .render(&channel(ChannelKind::Rep, format, true))
                .to_string();
            assert!(
                rep.contains("jane@acme.io") && rep.contains("+4915112345678"),
                "{rep}"
            );
        }
    }

    #[test]
    fn the_top_reasons_are_the_largest_effects_either_way() {
        let body = message().render(&channel(ChannelKind::Rep, ChannelFormat::Json, true));
        assert_eq!(
            body["top_reasons"],
            json!([{"rule": "demo", "points": 30}, {"rule": "free_mail", "points": -25}, {"rule": "title", "points": 20}])
        );
        assert_eq!(body["links"]["accept"], "https://l.example/v1/actions/a");
        assert_eq!(body["score"]["points"], 55);
    }

    #[test]
    fn block_kit_has_a_fallback_buttons_and_escaped_text() {
        let body = message().render(&channel(ChannelKind::Rep, ChannelFormat::Slack, true));
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with("Missed\nJane <Doe>, VP"));
        let blocks = body["blocks"].as_array().unwrap();
        let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["header", "section", "section", "section", "actions", "context"]
        );
        assert_eq!(blocks[0]["text"]["text"], "SLA missed: Jane <Doe>");
        let fields = blocks[2]["fields"].to_string();
        assert!(
            fields.contains("&lt;Doe&gt;") && fields.contains("Acme &amp; Co"),
            "{fields}"
        );
        let urls: Vec<&str> = blocks[4]["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["url"].as_str().unwrap())
            .collect();
        assert_eq!(
            urls,
            [
                "https://l.example/v1/actions/a",
                "https://l.example/v1/actions/r"
            ]
        );
    }
}
