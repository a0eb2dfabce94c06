//! The router's state: who holds how many open leads, where each team's rotation stands,
//! runtime rep overrides. The step that commits a decision is in lifecycle.rs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use handoff_domain::routing::{RepState, TeamState};

use crate::{Store, StoreError};

impl Store {
    /// Reads what a decision depends on for each `(team, members)` at `now`, in one round
    /// trip. The UTC day of `now` selects the daily-cap counters.
    pub async fn team_states(
        &self,
        teams: &[(&str, &[String])],
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, TeamState>, StoreError> {
        let day = now.format("%Y-%m-%d").to_string();
        let now_ms = now.timestamp_millis();
        let mut reps: Vec<&String> = teams
            .iter()
            .flat_map(|(_, members)| members.iter())
            .collect();
        reps.sort();
        reps.dedup();
        let team_ids: Vec<&str> = teams.iter().map(|(team, _)| *team).collect();
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(self.keys.rotation()).arg(&team_ids);
        pipe.cmd("HMGET")
            .arg(self.keys.assigned_on(&day))
            .arg(&reps);
        for rep in &reps {
            pipe.hgetall(self.keys.rep(rep));
            // Open leads whose records expired are not counted (the commit prunes them).
            pipe.zcount(self.keys.rep_open(rep), format!("({now_ms}"), "+inf");
        }
        let mut connection = self.connection();
        let mut replies: Vec<redis::Value> = pipe.query_async(&mut connection).await?;
        if replies.len() != 2 * reps.len() + 2 || teams.is_empty() {
            return Ok(BTreeMap::new());
        }
        let per_rep = replies.split_off(2);
        let rotations: Vec<Option<String>> = redis::from_redis_value(&replies[0])?;
        let today: Vec<Option<i64>> = redis::from_redis_value(&replies[1])?;
        let count = |n: Option<i64>| u32::try_from(n.unwrap_or(0).max(0)).unwrap_or(u32::MAX);
        let mut rep_states = BTreeMap::new();
        for ((rep, today), pair) in reps.iter().zip(today).zip(per_rep.chunks(2)) {
            let [overrides, open] = pair else { continue };
            let fields: BTreeMap<String, String> = redis::from_redis_value(overrides)?;
            let open: Option<i64> = redis::from_redis_value(open)?;
            rep_states.insert(
                (*rep).clone(),
                RepState {
                    open_leads: count(open),
                    assigned_today: count(today),
                    active: fields.get("active").and_then(|v| v.parse().ok()),
                    available: fields.get("available").and_then(|v| v.parse().ok()),
                    capacity: fields.get("capacity").and_then(|v| v.parse().ok()),
                },
            );
        }
        Ok(teams
            .iter()
            .zip(rotations)
            .map(|((team, members), rotation)| {
                let reps = members
                    .iter()
                    .filter_map(|m| rep_states.get(m).map(|s| (m.clone(), s.clone())))
                    .collect();
                (
                    (*team).to_owned(),
                    TeamState {
                        rotation: rotation.unwrap_or_default(),
                        reps,
                    },
                )
            })
            .collect())
    }

    /// Whether `lead` is among `rep`'s open leads at `now` (holding their capacity): a
    /// sticky repeat of it joins it (assign.lua checks again when committing).
    pub async fn is_open_with(
        &self,
        rep: &str,
        lead: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        // A score (ms the entry holds until) comes back as a float's text.
        let until: Option<f64> = redis::cmd("ZSCORE")
            .arg(self.keys.rep_open(rep))
            .arg(lead)
            .query_async(&mut connection)
            .await?;
        #[allow(clippy::cast_precision_loss)] // ms since 1970 fit f64's 53 bits exactly
        let now_ms = now.timestamp_millis() as f64;
        Ok(until.is_some_and(|until| until > now_ms))
    }

    /// A rep's open leads and runtime overrides (`active`, `available`, `capacity`).
    pub async fn rep_runtime(
        &self,
        rep_id: &str,
    ) -> Result<(i64, BTreeMap<String, String>), StoreError> {
        let mut connection = self.connection();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let (open, overrides): (Option<i64>, BTreeMap<String, String>) = redis::pipe()
            .zcount(self.keys.rep_open(rep_id), format!("({now_ms}"), "+inf")
            .hgetall(self.keys.rep(rep_id))
            .query_async(&mut connection)
            .await?;
        Ok((open.unwrap_or(0), overrides))
    }

    /// Sets and clears runtime overrides of a rep in one atomic step.
    pub async fn set_rep_overrides(
        &self,
        rep_id: &str,
        set: &[(&str, String)],
        clear: &[&str],
    ) -> Result<(), StoreError> {
        let key = self.keys.rep(rep_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (field, value) in set {
            pipe.hset(&key, *field, value).ignore();
        }
        if !clear.is_empty() {
            pipe.hdel(&key, clear).ignore();
        }
        let mut connection = self.connection();
        let _: () = pipe.query_async(&mut connection).await?;
        Ok(())
    }
}
