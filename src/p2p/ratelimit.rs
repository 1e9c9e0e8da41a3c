//! Per-peer rate limits on the inbound requests of the sync protocol, after Lighthouse's
//! req/resp limiter (`lighthouse_network/src/rpc/config.rs`: a token bucket per peer and
//! protocol): a request costs one token, or one per block or transaction it asks for; a
//! bucket refills continuously to its quota over its period. The quotas are several times
//! what an honest node asks for (our sync asks every peer for its Status on each round, and
//! has no client-side throttle), so they stop floods without refusing honest catch-up.
//!
//! A request over quota is not answered: the requester sees its request fail. A peer refused
//! [`REFUSALS_TO_BAN`] times within [`REFUSAL_WINDOW`] ignores the refusals (an honest one
//! retries a failed segment a few times a second at most) and is banned.

use super::codec::{SyncRequest, MAX_BLOCKS_BY_HASH};
use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The kinds of sync request, each with its own quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `Status`.
    Status,
    /// `BlocksByRange`, counted in blocks.
    BlocksByRange,
    /// `BlocksByHash`, counted in blocks.
    BlocksByHash,
    /// `BlockTxs` (BIP152 `getblocktxn`), counted in requests.
    BlockTxs,
    /// `NewBlock` (`--relay flood` pushes), counted in blocks.
    NewBlock,
    /// `PooledHashes` (mempool reconciliation), counted in requests.
    PooledHashes,
    /// `PooledTxs`, counted in transactions asked for.
    PooledTxs,
}

impl Kind {
    /// The quota: tokens per period (also the burst).
    pub fn quota(self) -> (u64, Duration) {
        let s = Duration::from_secs;
        match self {
            // Lighthouse: 5 per 15 s; ours asks on every sync round.
            Kind::Status => (64, s(10)),
            // Lighthouse: 1,024 per 10 s; 400 blocks/s per peer keeps catch-up fast.
            Kind::BlocksByRange => (4096, s(10)),
            Kind::BlocksByHash => (256, s(10)),
            // A compact block needs at most one per peer that delivered it, one block a slot.
            Kind::BlockTxs => (256, s(10)),
            Kind::NewBlock => (128, s(10)),
            // One on each connect.
            Kind::PooledHashes => (20, s(10)),
            // Twice what one reconciliation may ask ([`super::codec::MAX_POOLED_HASHES`]).
            Kind::PooledTxs => (2 * super::codec::MAX_POOLED_HASHES as u64, s(10)),
        }
    }

    /// The kind of a request and what it costs.
    pub fn of(req: &SyncRequest) -> (Kind, u64) {
        match req {
            SyncRequest::Status => (Kind::Status, 1),
            SyncRequest::BlocksByRange { count, .. } => (Kind::BlocksByRange, (*count).max(1)),
            SyncRequest::BlocksByHash(h) => (
                Kind::BlocksByHash,
                h.len().clamp(1, MAX_BLOCKS_BY_HASH) as u64,
            ),
            SyncRequest::BlockTxs { .. } => (Kind::BlockTxs, 1),
            SyncRequest::NewBlock { .. } => (Kind::NewBlock, 1),
            SyncRequest::PooledHashes => (Kind::PooledHashes, 1),
            SyncRequest::PooledTxs(h) => (Kind::PooledTxs, h.len().max(1) as u64),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Refusals within [`REFUSAL_WINDOW`] that get a peer banned.
pub const REFUSALS_TO_BAN: usize = 100;
/// See [`REFUSALS_TO_BAN`].
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(10);

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Within quota: answer it.
    Answer,
    /// Over quota: leave it unanswered.
    Refuse,
    /// Over quota, and the peer has been refused [`REFUSALS_TO_BAN`] times within
    /// [`REFUSAL_WINDOW`]: ban it.
    Ban,
}

/// Token buckets per (peer, kind), and recent refusals per peer.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<(PeerId, Kind), Bucket>,
    refusals: HashMap<PeerId, VecDeque<Instant>>,
    /// Requests refused so far (all peers).
    pub refused: u64,
}

impl RateLimiter {
    /// What to do with `req` from `peer` now ([`Self::allow`], and the refusal count).
    pub fn decide(&mut self, peer: PeerId, req: &SyncRequest, now: Instant) -> Decision {
        if self.allow(peer, req, now) {
            return Decision::Answer;
        }
        let recent = self.refusals.entry(peer).or_default();
        recent.push_back(now);
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > REFUSAL_WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= REFUSALS_TO_BAN {
            recent.clear();
            Decision::Ban
        } else {
            Decision::Refuse
        }
    }

    /// Whether `peer` may have `req` answered now; takes its cost from the bucket if so. A
    /// request costing more than a whole quota is charged the quota (the server caps what it
    /// sends anyway).
    pub fn allow(&mut self, peer: PeerId, req: &SyncRequest, now: Instant) -> bool {
        let (kind, cost) = Kind::of(req);
        let (quota, period) = kind.quota();
        let cost = cost.min(quota) as f64;
        let b = self.buckets.entry((peer, kind)).or_insert(Bucket {
            tokens: quota as f64,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() / period.as_secs_f64();
        b.tokens = (b.tokens + refill * quota as f64).min(quota as f64);
        b.at = now;
        if b.tokens >= cost {
            b.tokens -= cost;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Drops a disconnected peer's buckets.
    pub fn forget(&mut self, peer: &PeerId) {
        self.buckets.retain(|(p, _), _| p != peer);
        self.refusals.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_refill_over_their_period_per_peer_and_kind() {
        let mut rl = RateLimiter::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for _ in 0..64 {
            assert!(rl.allow(a, &SyncRequest::Status, t0));
        }
        assert!(
            !rl.allow(a, &SyncRequest::Status, t0),
            "65th Status within 10 s"
        );
        assert!(
            rl.allow(b, &SyncRequest::Status, t0),
            "another peer has its own bucket"
        );
        assert!(
            rl.allow(a, &SyncRequest::PooledHashes, t0),
            "another kind too"
        );
        // 10 s / 64 ≈ 0.16 s refills one Status.
        let later = t0 + Duration::from_millis(200);
        assert!(rl.allow(a, &SyncRequest::Status, later));
        assert!(!rl.allow(a, &SyncRequest::Status, later));
        assert_eq!(rl.refused, 2);
        // Blocks count: 4,096 per 10 s; an 8,192-block request is charged 4,096.
        let range = |count| SyncRequest::BlocksByRange { start: 1, count };
        assert!(rl.allow(a, &range(8192), t0));
        assert!(!rl.allow(a, &range(1), t0));
        assert!(rl.allow(a, &range(2048), t0 + Duration::from_secs(5)));
        rl.forget(&a);
        assert!(rl.allow(a, &range(4096), t0 + Duration::from_secs(5)));
    }

    #[test]
    fn a_peer_that_ignores_refusals_is_banned() {
        let mut rl = RateLimiter::default();
        let a = PeerId::random();
        let t0 = Instant::now();
        let req = SyncRequest::PooledHashes;
        let decisions: Vec<Decision> = (0..20 + REFUSALS_TO_BAN)
            .map(|_| rl.decide(a, &req, t0))
            .collect();
        assert!(decisions[..20].iter().all(|d| *d == Decision::Answer));
        assert!(decisions[20..20 + REFUSALS_TO_BAN - 1]
            .iter()
            .all(|d| *d == Decision::Refuse));
        assert_eq!(decisions[20 + REFUSALS_TO_BAN - 1], Decision::Ban);
        // Refusals spread over more than the window never add up to a ban.
        let b = PeerId::random();
        for i in 0..(3 * REFUSALS_TO_BAN) as u64 {
            let t = t0 + Duration::from_millis(i * 200);
            assert_ne!(
                rl.decide(b, &SyncRequest::Status, t),
                Decision::Ban,
                "request {i}"
            );
        }
    }
}
