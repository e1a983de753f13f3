//! Per-client rate limiting: one token bucket per client address, in memory. Submissions take
//! one token each; reads take as many as their query costs (see `graphql::cost`).
//!
//! The bucket is kept as GCRA (the generic cell rate algorithm): per client, one instant, the
//! moment its bucket would be full again. A fresh or idle client has no entry at all, which is
//! what makes pruning exact: an entry whose instant has passed means the same as no entry.
//! Time comes in as an argument (`check_at`), so the arithmetic is tested without sleeping.
//!
//! Written here rather than with `governor` (the GCRA crate): its keyed limiter's table has no
//! bound. `retain_recent` drops only clients whose bucket is full again, so a flood of source
//! addresses that are all still limited grows it without end. This table holds at most
//! `max_clients` and makes room by forgetting the clients closest to full (`make_room`),
//! which keeps limited the clients that spent their bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Whom a bucket belongs to: an IPv4 address, or the /64 prefix of an IPv6 address (one host
/// or home usually owns a whole /64, so keying by full address would hand it 2^64 buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; masked to /64 they
            // would all share one bucket.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => ClientKey(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & (u128::MAX << 64),
                ))),
            },
        }
    }
}

/// Refused: the client's bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry in {retry_after:?}")]
pub struct RateLimited {
    /// How long until one token is back.
    pub retry_after: Duration,
}

impl RateLimited {
    /// Whole seconds to wait, rounded up and at least 1, so that a client that waits exactly
    /// this long is let in.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// Tracked clients at most. An entry is about 50 bytes, so this bounds the table to a few MB.
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;
/// Below this many entries, pruning by size is not worth it.
const PRUNE_FLOOR: usize = 1_024;
/// Idle entries are dropped at least this often, so a table that grew during a burst of
/// traffic shrinks again when the traffic is gone.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Up to `burst` tokens at once per client, refilled continuously at `burst` per minute.
#[derive(Debug)]
pub struct RateLimiter {
    /// The bucket's size: tokens per minute.
    burst: u32,
    /// One token comes back every `interval`.
    interval: Duration,
    /// `burst * interval`: how far ahead of now a client's "full again" instant may run.
    capacity: Duration,
    max_clients: usize,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    /// Per client, the instant its bucket is full again. Only clients with that instant in
    /// the future matter; the others are kept until the next prune.
    full_at: HashMap<ClientKey, Instant>,
    /// Prune when the table reaches this size: doubling keeps pruning amortised O(1).
    prune_at_len: usize,
    last_prune: Option<Instant>,
}

impl RateLimiter {
    /// `per_minute` requests at once and per minute; `0` means no limit (`None`).
    pub fn per_minute(per_minute: u32) -> Option<Self> {
        NonZeroU32::new(per_minute).map(Self::new)
    }

    pub fn new(per_minute: NonZeroU32) -> Self {
        let interval = Duration::from_secs(60) / per_minute.get();
        RateLimiter {
            burst: per_minute.get(),
            interval,
            capacity: interval * per_minute.get(),
            max_clients: DEFAULT_MAX_CLIENTS,
            buckets: Mutex::new(Buckets {
                full_at: HashMap::new(),
                prune_at_len: PRUNE_FLOOR,
                last_prune: None,
            }),
        }
    }

    /// Bounds the table (at least 2 entries); see [`DEFAULT_MAX_CLIENTS`].
    pub fn with_max_clients(mut self, max_clients: usize) -> Self {
        self.max_clients = max_clients.max(2);
        self
    }

    /// Takes one token from the client's bucket now.
    pub fn check(&self, client: ClientKey) -> Result<(), RateLimited> {
        self.check_at(client, Instant::now())
    }

    /// Takes one token from the client's bucket at `now`; a refusal takes nothing.
    pub fn check_at(&self, client: ClientKey, now: Instant) -> Result<(), RateLimited> {
        self.check_cost_at(client, 1, now)
    }

    /// Takes `cost` tokens at once from the client's bucket now.
    pub fn check_cost(&self, client: ClientKey, cost: u32) -> Result<(), RateLimited> {
        self.check_cost_at(client, cost, Instant::now())
    }

    /// The bucket's size, the most one call can take.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Takes `cost` tokens at once from the client's bucket at `now`; a refusal takes nothing.
    /// A cost above the bucket's size takes the whole (full) bucket, since it could never fit;
    /// a cost of 0 counts as 1.
    pub fn check_cost_at(
        &self,
        client: ClientKey,
        cost: u32,
        now: Instant,
    ) -> Result<(), RateLimited> {
        let cost = cost.clamp(1, self.burst);
        let mut buckets = self.lock();
        buckets.prune_if_due(now);
        let full_at = buckets
            .full_at
            .get(&client)
            .copied()
            .filter(|at| *at > now)
            .unwrap_or(now);
        // At most `burst * interval` (60 s): no overflow.
        let next = full_at + self.interval * cost;
        let ahead = next.saturating_duration_since(now);
        if ahead > self.capacity {
            return Err(RateLimited {
                retry_after: ahead - self.capacity,
            });
        }
        if !buckets.full_at.contains_key(&client) && buckets.full_at.len() >= self.max_clients {
            buckets.make_room(now, self.max_clients);
        }
        buckets.full_at.insert(client, next);
        Ok(())
    }

    /// Clients the table holds now, idle ones not yet pruned included.
    pub fn tracked_clients(&self) -> usize {
        self.lock().full_at.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        // Every update leaves the map consistent (one insert or one retain), so a panic
        // elsewhere while holding the lock cannot have left it half-written.
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Buckets {
    fn prune_if_due(&mut self, now: Instant) {
        let last = *self.last_prune.get_or_insert(now);
        let stale = now.saturating_duration_since(last) >= PRUNE_EVERY;
        if stale || self.full_at.len() >= self.prune_at_len {
            self.prune(now);
        }
    }

    /// Forgets every client whose bucket is full again: exactly as if it had never come.
    fn prune(&mut self, now: Instant) {
        self.full_at.retain(|_, at| *at > now);
        let len = self.full_at.len();
        self.prune_at_len = (len * 2).max(PRUNE_FLOOR);
        if self.full_at.capacity() > 4 * len.max(PRUNE_FLOOR) {
            self.full_at.shrink_to(2 * len);
        }
        self.last_prune = Some(now);
    }

    /// The table is full: prune, and if more than half of it is still in use, forget the
    /// clients closest to full again until half is left. That resets them to a full bucket,
    /// which gives away the least: clients that have used up their bucket stay limited.
    /// Leaving half free keeps this amortised O(1) per request under a flood of addresses.
    fn make_room(&mut self, now: Instant, max_clients: usize) {
        self.prune(now);
        let keep = max_clients / 2;
        if self.full_at.len() <= keep {
            return;
        }
        let mut instants: Vec<Instant> = self.full_at.values().copied().collect();
        let cut = instants.len() - keep;
        let (_, last_forgotten, _) = instants.select_nth_unstable(cut - 1);
        let last_forgotten = *last_forgotten;
        self.full_at.retain(|_, at| *at > last_forgotten);
        tracing::warn!(
            kept = self.full_at.len(),
            "rate limiter table full of active clients; forgot those closest to full"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    fn v4(last: u8) -> ClientKey {
        ClientKey::from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    fn v6(text: &str) -> ClientKey {
        ClientKey::from(text.parse::<IpAddr>().unwrap())
    }

    fn limiter(per_minute: u32) -> RateLimiter {
        RateLimiter::per_minute(per_minute).unwrap()
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn zero_turns_the_limit_off() {
        assert!(RateLimiter::per_minute(0).is_none());
    }

    #[test]
    fn allows_a_burst_of_n_then_refuses() {
        let limiter = limiter(3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at(v4(1), now), Ok(()));
        }
        let refused = limiter.check_at(v4(1), now).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        assert_eq!(refused.retry_after_secs(), 20);
        // Other clients have buckets of their own.
        assert_eq!(limiter.check_at(v4(2), now), Ok(()));
    }

    #[test]
    fn refills_continuously() {
        let limiter = limiter(2);
        let start = Instant::now();
        limiter.check_at(v4(1), start).unwrap();
        limiter.check_at(v4(1), start).unwrap();
        // One token every 30 s: not yet at 29 s, one at 30 s, and a refusal takes nothing.
        let early = limiter.check_at(v4(1), start + 29 * SEC).unwrap_err();
        assert_eq!(early.retry_after_secs(), 1);
        assert_eq!(limiter.check_at(v4(1), start + 30 * SEC), Ok(()));
        assert!(limiter.check_at(v4(1), start + 30 * SEC).is_err());
        // After a whole idle minute the full burst is back, and no more.
        let later = start + 90 * SEC;
        assert_eq!(limiter.check_at(v4(1), later), Ok(()));
        assert_eq!(limiter.check_at(v4(1), later), Ok(()));
        assert!(limiter.check_at(v4(1), later).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        let secs = |ms| {
            RateLimited {
                retry_after: Duration::from_millis(ms),
            }
            .retry_after_secs()
        };
        assert_eq!(secs(0), 1);
        assert_eq!(secs(1), 1);
        assert_eq!(secs(1_000), 1);
        assert_eq!(secs(1_001), 2);
        assert_eq!(secs(11_500), 12);

        // 7 per minute: one token every 8.571… s, so the wait is 9 s, not 8.
        let limiter = limiter(7);
        let now = Instant::now();
        for _ in 0..7 {
            limiter.check_at(v4(1), now).unwrap();
        }
        assert_eq!(
            limiter.check_at(v4(1), now).unwrap_err().retry_after_secs(),
            9
        );
    }

    #[test]
    fn keys_ipv6_by_its_64_prefix_and_mapped_ipv4_as_ipv4() {
        assert_eq!(v6("2001:db8:1:2:aaaa::1"), v6("2001:db8:1:2:ffff:1:2:3"));
        assert_ne!(v6("2001:db8:1:2::1"), v6("2001:db8:1:3::1"));
        assert_eq!(v6("::ffff:192.0.2.7"), v4(7));
        assert_ne!(v6("::ffff:192.0.2.7"), v6("::ffff:192.0.2.8"));

        let limiter = limiter(1);
        let now = Instant::now();
        limiter.check_at(v6("2001:db8:1:2::1"), now).unwrap();
        assert!(limiter.check_at(v6("2001:db8:1:2::99"), now).is_err());
        assert_eq!(limiter.check_at(v6("2001:db8:1:3::1"), now), Ok(()));
    }

    #[test]
    fn forgets_clients_whose_bucket_is_full_again() {
        let limiter = limiter(60);
        let start = Instant::now();
        for i in 0..PRUNE_FLOOR - 1 {
            let key = ClientKey::from(IpAddr::V4(Ipv4Addr::from(i as u32)));
            limiter.check_at(key, start).unwrap();
        }
        assert_eq!(limiter.tracked_clients(), PRUNE_FLOOR - 1);
        // One token is back after one second: every entry is full again and pruned once the
        // table reaches the pruning size.
        let later = start + 2 * SEC;
        limiter.check_at(v4(1), later).unwrap();
        limiter.check_at(v4(1), later).unwrap();
        assert_eq!(limiter.tracked_clients(), 1);

        // A small table is still pruned once a minute.
        let much_later = later + PRUNE_EVERY;
        limiter.check_at(v4(2), much_later).unwrap();
        assert_eq!(limiter.tracked_clients(), 1);
    }

    #[test]
    fn a_flood_of_addresses_stays_bounded_and_keeps_exhausted_clients_limited() {
        let limiter = limiter(2).with_max_clients(100);
        let now = Instant::now();
        // An exhausted client, then many fresh addresses from a big IPv6 block.
        limiter.check_at(v4(1), now).unwrap();
        limiter.check_at(v4(1), now).unwrap();
        for i in 0..10_000u128 {
            let ip = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (i << 64));
            limiter
                .check_at(ClientKey::from(IpAddr::V6(ip)), now)
                .unwrap();
            assert!(limiter.tracked_clients() <= 100);
        }
        assert!(limiter.check_at(v4(1), now).is_err());
    }

    #[test]
    fn a_costly_call_takes_many_tokens_and_waits_for_as_many() {
        // 600 per minute: one token every 100 ms.
        let limiter = limiter(600);
        let now = Instant::now();
        assert_eq!(limiter.check_cost_at(v4(1), 500, now), Ok(()));
        let refused = limiter.check_cost_at(v4(1), 200, now).unwrap_err();
        // 100 tokens are left; 100 more come back in 10 s.
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        assert_eq!(limiter.check_cost_at(v4(1), 100, now), Ok(()));
        // A cost beyond the bucket takes a full bucket, so it is let in after a full minute.
        let fresh = limiter.check_cost_at(v4(2), 1_000_000, now);
        assert_eq!(fresh, Ok(()));
        assert!(limiter.check_cost_at(v4(2), 1, now).is_err());
        assert_eq!(
            limiter.check_cost_at(v4(2), 1_000_000, now + Duration::from_secs(60)),
            Ok(())
        );
    }

    proptest! {
        /// In any stretch of time, a client gets at most the burst plus what refilled.
        #[test]
        fn never_allows_more_than_burst_plus_refill(
            per_minute in 1u32..=120,
            gaps_ms in proptest::collection::vec(0u64..5_000, 1..300),
        ) {
            let limiter = limiter(per_minute);
            let start = Instant::now();
            let mut now = start;
            let mut allowed = 0u64;
            for gap in gaps_ms {
                now += Duration::from_millis(gap);
                if limiter.check_at(v4(1), now).is_ok() {
                    allowed += 1;
                }
                let elapsed = now - start;
                let refilled = (elapsed.as_nanos() / limiter.interval.as_nanos()) as u64;
                prop_assert!(allowed <= u64::from(per_minute) + refilled);
            }
        }

        /// Weighted: in any stretch of time, a client gets at most the burst plus what refilled,
        /// in cost units.
        #[test]
        fn weighted_costs_never_exceed_burst_plus_refill(
            per_minute in 1u32..=10_000,
            calls in proptest::collection::vec((0u64..2_000, 1u32..3_000), 1..200),
        ) {
            let limiter = limiter(per_minute);
            let start = Instant::now();
            let mut now = start;
            let mut taken = 0u64;
            for (gap, cost) in calls {
                now += Duration::from_millis(gap);
                if limiter.check_cost_at(v4(1), cost, now).is_ok() {
                    taken += u64::from(cost.min(per_minute));
                }
                let elapsed = now - start;
                let refilled = (elapsed.as_nanos() / limiter.interval.as_nanos()) as u64;
                prop_assert!(taken <= u64::from(per_minute) + refilled);
            }
        }

        /// A refused client that waits the advertised time is let in, whatever the cost.
        #[test]
        fn waiting_retry_after_is_enough_for_the_same_cost(
            per_minute in 1u32..=100_000,
            cost in 1u32..=100_000,
        ) {
            let limiter = limiter(per_minute);
            let now = Instant::now();
            limiter.check_cost_at(v4(1), per_minute, now).unwrap();
            let refused = limiter.check_cost_at(v4(1), cost, now).unwrap_err();
            let then = now + refused.retry_after;
            prop_assert_eq!(limiter.check_cost_at(v4(1), cost, then), Ok(()));
        }

        /// A refused client that waits the advertised time is let in.
        #[test]
        fn waiting_retry_after_is_enough(per_minute in 1u32..=1_000, used in 0u32..3) {
            let limiter = limiter(per_minute);
            let now = Instant::now();
            for _ in 0..per_minute + used {
                let _ = limiter.check_at(v4(1), now);
            }
            let refused = limiter.check_at(v4(1), now).unwrap_err();
            let then = now + Duration::from_secs(refused.retry_after_secs());
            prop_assert_eq!(limiter.check_at(v4(1), then), Ok(()));
        }
    }
}
