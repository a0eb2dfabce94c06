//! One decision at a time per team inside this instance.
//!
//! A decision reads a team's state (rotation, open leads, daily counts), picks a rep, and
//! commits with a compare-and-set on that state; a commit that finds the state moved decides
//! again. Several partitions of one instance deciding for the same team would make each
//! other's commits fail (twelve partitions on one team: twice the router's and Redis's CPU a
//! lead, and leads retried after a backoff; docs/benchmarks.md, "The router alone"). Inside
//! an instance they take turns instead; instances still race each other, and the
//! compare-and-set keeps that correct.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

#[derive(Debug, Clone, Default)]
pub(crate) struct TeamLocks {
    // One lock per team id ever decided for: bounded by the teams in the rules.
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Held while a decision for its teams is read, made and committed.
#[derive(Debug)]
pub(crate) struct TeamTurn {
    _guards: Vec<OwnedMutexGuard<()>>,
}

impl TeamLocks {
    /// Waits for the turn of every team in `teams`. They are taken in sorted order, so two
    /// decisions over overlapping sets of teams cannot wait for each other.
    pub async fn turn<'a>(&self, teams: impl IntoIterator<Item = &'a str>) -> TeamTurn {
        let mut teams: Vec<&str> = teams.into_iter().collect();
        teams.sort_unstable();
        teams.dedup();
        let locks: Vec<Arc<tokio::sync::Mutex<()>>> = {
            let mut map = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            teams
                .iter()
                .map(|team| map.entry((*team).to_owned()).or_default().clone())
                .collect()
        };
        let mut guards = Vec::with_capacity(locks.len());
        for lock in locks {
            guards.push(lock.lock_owned().await);
        }
        TeamTurn { _guards: guards }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)] // assertions in tests
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_team_has_one_turn_at_a_time_and_other_teams_go_on() {
        let locks = TeamLocks::default();
        let held = locks.turn(["sales"]).await;
        let same = locks.clone();
        let mut waiting = tokio::spawn(async move { same.turn(["sales", "emea"]).await });
        // Another team's decision is not held up by this one.
        tokio::time::timeout(Duration::from_secs(5), locks.turn(["partners"]))
            .await
            .expect("another team's turn comes at once");
        // The one that shares a team waits until the turn is given back.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiting)
                .await
                .is_err(),
            "a decision for the same team went ahead while another held its turn"
        );
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the turn comes once given back")
            .expect("the waiting task ran");
    }

    #[tokio::test]
    async fn overlapping_sets_taken_in_any_order_do_not_deadlock() {
        let locks = TeamLocks::default();
        let mut tasks = Vec::new();
        for n in 0..64 {
            let locks = locks.clone();
            tasks.push(tokio::spawn(async move {
                let teams = if n % 2 == 0 { ["a", "b"] } else { ["b", "a"] };
                let _turn = locks.turn(teams).await;
                tokio::task::yield_now().await;
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("no deadlock")
                .expect("task ran");
        }
    }
}
