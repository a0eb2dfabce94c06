//! The Redis server's clock, as this process reads it.
//!
//! The router writes deadlines (assigned at + the SLA) and the SLA tracker fires them by
//! comparing with Redis's `TIME` (deadlines.rs). A router host whose clock is off would shift
//! every deadline it writes, and every assignment time, by as much. So the services take "now"
//! from here: the local clock corrected by its offset to Redis's, measured with one `TIME` at
//! start-up and at every state check (`state.check_interval_ms`), halfway through the round
//! trip (error: half the round trip, well under a millisecond on a LAN).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Store, StoreError};

/// Shared by every clone of a [`Store`]: one measurement corrects them all.
#[derive(Debug, Clone, Default)]
pub struct ServerClock {
    offset_ms: Arc<AtomicI64>,
}

impl ServerClock {
    /// Now on the Redis server's clock (the local clock until the first measurement).
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms())
    }

    /// Redis's clock minus this host's, in milliseconds, as last measured.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

impl Store {
    /// Now on the Redis server's clock: what deadlines and assignment times are written in.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Measures the offset of the Redis server's clock to this host's, keeps it for
    /// [`Store::now`] and returns it (milliseconds, Redis minus local).
    ///
    /// Takes the best of [`READINGS`] `TIME` round trips (the shortest bounds the error
    /// best), and keeps the offset measured before when even the best took longer than
    /// [`MAX_ROUND_TRIP_MS`]: a `TIME` queued behind a reconnect (Redis restarting) once read
    /// a second ahead, and assignments written a second in the future refused the reps'
    /// first touches as "before the assignment" (found by the chaos run).
    pub async fn sync_clock(&self) -> Result<i64, StoreError> {
        let mut best: Option<(i64, i64)> = None;
        for _ in 0..READINGS {
            let (round_trip, offset) = self.read_server_clock().await?;
            if best.is_none_or(|(fastest, _)| round_trip < fastest) {
                best = Some((round_trip, offset));
            }
            if round_trip <= GOOD_ROUND_TRIP_MS {
                break;
            }
        }
        match best {
            Some((round_trip, offset)) if round_trip <= MAX_ROUND_TRIP_MS => {
                self.clock.offset_ms.store(offset, Ordering::Relaxed);
                Ok(offset)
            }
            _ => Ok(self.clock.offset_ms()),
        }
    }

    /// One `TIME`: (round trip, offset), in milliseconds.
    async fn read_server_clock(&self) -> Result<(i64, i64), StoreError> {
        let mut connection = self.connection();
        let before = Utc::now();
        let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut connection).await?;
        let after = Utc::now();
        let server_ms = seconds.saturating_mul(1000).saturating_add(micros / 1000);
        Ok((
            (after - before).num_milliseconds(),
            offset_ms(before, server_ms, after),
        ))
    }
}

/// `TIME` round trips taken per measurement, at most.
const READINGS: usize = 3;
/// A round trip short enough to stop at (the reading is within 1 ms).
const GOOD_ROUND_TRIP_MS: i64 = 2;
/// Slower than this, a reading says more about queues than about clocks: it is not kept.
const MAX_ROUND_TRIP_MS: i64 = 100;

/// The server's time minus the local time halfway between sending and receiving: the
/// reading's error is at most half the round trip, whichever way the time was spent.
fn offset_ms(sent: DateTime<Utc>, server_ms: i64, received: DateTime<Utc>) -> i64 {
    let midpoint_ms = sent.timestamp_millis() + (received - sent).num_milliseconds() / 2;
    server_ms.saturating_sub(midpoint_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_taken_at_the_middle_of_the_round_trip() {
        let sent = DateTime::from_timestamp_millis(1_000_000).unwrap_or_default();
        let received = sent + TimeDelta::milliseconds(10);
        // A server 1 h ahead answering at the middle of the trip.
        assert_eq!(offset_ms(sent, 1_000_005 + 3_600_000, received), 3_600_000);
        // A server behind.
        assert_eq!(offset_ms(sent, 1_000_005 - 250, received), -250);
        // The same clock: the server read it somewhere in the trip, at most half off.
        assert!(offset_ms(sent, 1_000_000, received).abs() <= 5);
    }
}
