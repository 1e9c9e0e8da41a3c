//! Application-specific peer score: gossipsub v1.1's P5 ("Application-Specific Scoring"),
//! fed by what only the node can judge: bad range-sync replies, invalid transactions served
//! during mempool reconciliation and bans requested by RPC (**faults**), and sync requests a
//! peer left unanswered (**failures**).
//!
//! After Lighthouse's peer score (`lighthouse_network/src/peer_manager/peerdb/score.rs`): a
//! penalty lowers the score at once, and the score then decays exponentially back toward 0
//! with a half-life of [`HALF_LIFE`] (10 minutes, Lighthouse's `SCORE_HALFLIFE`), so an
//! honest peer recovers while a peer that keeps misbehaving stays low. Scores outlive the
//! connection (a peer cannot wash its score by reconnecting); an entry is dropped once it has
//! decayed to within [`FORGET_BELOW`] of 0.
//!
//! Units: scores are ≤ 0 and ≥ [`MIN_SCORE`]; gossipsub multiplies what it is given by
//! [`super::behaviour::APP_SCORE_WEIGHT`] (10). Faults go to gossipsub whole: one bad range
//! reply lowers the gossipsub score by 10, and 8 reach the graylist threshold (-80): the peer
//! is banned ([`super::bans`]). Failures go to gossipsub only beyond [`FAILURE_TOLERANCE`]:
//! gossipsub keeps peers with a negative score out of its mesh, and on a loaded machine an
//! honest peer's answers can time out now and then; it takes more than ten failures within a
//! half-life before they count.

use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Half-life of a score's decay back toward 0 (Lighthouse's `SCORE_HALFLIFE`, 600 s).
pub const HALF_LIFE: Duration = Duration::from_secs(600);
/// Lowest score: what a ban requested by RPC (`setban <peer id> add`) sets, ×10 in gossipsub
/// (-1000), far below the graylist threshold.
pub const MIN_SCORE: f64 = -100.0;
/// Scores closer to 0 than this are forgotten.
pub const FORGET_BELOW: f64 = 0.01;
/// Penalty for a sync request the peer left unanswered: it timed out, or the peer closed the
/// stream without an answer (a peer that never answers a libp2p request closes the stream at
/// its own timeout, which may come first). A connection closed meanwhile costs nothing: that
/// is churn, not the peer's doing. A tenth of a bad reply (Lighthouse's "high tolerance"
/// errors).
pub const FAILURE_PENALTY: f64 = 0.1;
/// Failures up to this much (ten within a half-life) do not reach gossipsub.
pub const FAILURE_TOLERANCE: f64 = 1.0;

/// One peer's scores.
#[derive(Clone, Copy, Debug)]
struct Entry {
    faults: f64,
    failures: f64,
    at: Instant,
}

impl Entry {
    fn decayed(self, now: Instant) -> Entry {
        let k = 0.5f64
            .powf(now.saturating_duration_since(self.at).as_secs_f64() / HALF_LIFE.as_secs_f64());
        Entry {
            faults: self.faults * k,
            failures: self.failures * k,
            at: now,
        }
    }

    /// What gossipsub gets (P5, before its weight).
    fn gossip(self) -> f64 {
        (self.faults + (self.failures + FAILURE_TOLERANCE).min(0.0)).max(MIN_SCORE)
    }
}

/// The application scores of every peer that has one (connected or not).
#[derive(Debug, Default)]
pub struct AppScores {
    scores: HashMap<PeerId, Entry>,
}

impl AppScores {
    fn entry(&self, peer: &PeerId, now: Instant) -> Entry {
        self.scores
            .get(peer)
            .map(|e| e.decayed(now))
            .unwrap_or(Entry {
                faults: 0.0,
                failures: 0.0,
                at: now,
            })
    }

    /// `peer`'s score now, faults and failures together (0 if it has none): `getpeerinfo`'s
    /// `app_score`.
    pub fn get(&self, peer: &PeerId, now: Instant) -> f64 {
        let e = self.entry(peer, now);
        (e.faults + e.failures).max(MIN_SCORE)
    }

    /// What gossipsub should hold as `peer`'s application score now (faults, plus failures
    /// beyond [`FAILURE_TOLERANCE`]).
    pub fn gossip(&self, peer: &PeerId, now: Instant) -> f64 {
        self.entry(peer, now).gossip()
    }

    /// A fault: lowers `peer`'s faults by `penalty` (≥ 0; a negative one is ignored), not
    /// below [`MIN_SCORE`]; returns the gossipsub value.
    pub fn penalize(&mut self, peer: PeerId, penalty: f64, now: Instant) -> f64 {
        let mut e = self.entry(&peer, now);
        e.faults = (e.faults - penalty.max(0.0)).max(MIN_SCORE);
        self.scores.insert(peer, e);
        e.gossip()
    }

    /// A request `peer` left unanswered ([`FAILURE_PENALTY`]); returns the gossipsub value.
    pub fn failed(&mut self, peer: PeerId, now: Instant) -> f64 {
        let mut e = self.entry(&peer, now);
        e.failures = (e.failures - FAILURE_PENALTY).max(MIN_SCORE);
        self.scores.insert(peer, e);
        e.gossip()
    }

    /// Sets `peer`'s faults to [`MIN_SCORE`] (a ban requested by RPC).
    pub fn set_min(&mut self, peer: PeerId, now: Instant) {
        let mut e = self.entry(&peer, now);
        e.faults = MIN_SCORE;
        self.scores.insert(peer, e);
    }

    /// Forgets `peer`'s score (its ban was lifted by RPC or expired: it starts again at 0).
    pub fn reset(&mut self, peer: &PeerId) {
        self.scores.remove(peer);
    }

    /// Brings every score up to date and drops those within [`FORGET_BELOW`] of 0; returns
    /// each remaining peer's gossipsub value (and 0 for each dropped one), to hand to
    /// gossipsub.
    pub fn decay(&mut self, now: Instant) -> Vec<(PeerId, f64)> {
        let mut out = Vec::with_capacity(self.scores.len());
        self.scores.retain(|peer, e| {
            *e = e.decayed(now);
            let keep = e.faults + e.failures <= -FORGET_BELOW;
            out.push((*peer, if keep { e.gossip() } else { 0.0 }));
            keep
        });
        out
    }

    /// Number of peers with a score.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether no peer has a score.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_add_up_and_halve_every_half_life() {
        let mut s = AppScores::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        assert_eq!(s.get(&p, t0), 0.0);
        assert_eq!(s.penalize(p, 1.0, t0), -1.0);
        assert_eq!(s.penalize(p, 1.0, t0), -2.0);
        let later = t0 + HALF_LIFE;
        assert!((s.get(&p, later) + 1.0).abs() < 1e-9);
        assert!((s.penalize(p, 0.5, later) + 1.5).abs() < 1e-9);
        // A negative penalty is no reward.
        assert!((s.penalize(p, -5.0, later) + 1.5).abs() < 1e-9);
    }

    #[test]
    fn floor_is_min_score_and_bans_set_it() {
        let mut s = AppScores::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert_eq!(s.penalize(p, 1e9, t0), MIN_SCORE);
        s.set_min(q, t0);
        assert_eq!(s.get(&q, t0), MIN_SCORE);
        s.reset(&q);
        assert_eq!(s.get(&q, t0), 0.0);
    }

    #[test]
    fn decay_reports_every_score_and_forgets_the_recovered() {
        let mut s = AppScores::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        s.penalize(p, 8.0, t0);
        s.penalize(q, 0.019, t0);
        let mut out = s.decay(t0 + HALF_LIFE);
        out.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, p);
        assert!((out[0].1 + 4.0).abs() < 1e-9);
        // q decayed to -0.0095: forgotten, and reported as 0 so gossipsub forgets it too.
        assert_eq!(out[1], (q, 0.0));
        assert_eq!(s.len(), 1);
        // Ten half-lives later p is at -0.004: forgotten.
        s.decay(t0 + HALF_LIFE * 11);
        assert!(s.is_empty());
    }

    #[test]
    fn failures_reach_gossipsub_only_beyond_the_tolerance() {
        let mut s = AppScores::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        // Ten failures at once: shown, not handed to gossipsub.
        for _ in 0..10 {
            assert_eq!(s.failed(p, t0), 0.0);
        }
        assert!((s.get(&p, t0) + 1.0).abs() < 1e-9);
        assert!((s.failed(p, t0) + 0.1).abs() < 1e-9);
        // A fault counts whole on top.
        assert!((s.penalize(p, 1.0, t0) + 1.1).abs() < 1e-9);
    }

    #[test]
    fn steady_failures_stay_above_the_graylist() {
        // One failed request a minute for five hours: failures settle near
        // -FAILURE_PENALTY / (1 - 2^(-60/600)) ≈ -1.49, of which gossipsub gets -0.49
        // (-4.9 after its weight), far above the graylist threshold (-80).
        let mut s = AppScores::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        let mut last = 0.0;
        for i in 0..300u32 {
            last = s.failed(p, t0 + Duration::from_secs(60) * i);
        }
        let shown = s.get(&p, t0 + Duration::from_secs(60) * 299);
        assert!(shown < -1.4 && shown > -1.6, "{shown}");
        assert!(last < -0.4 && last > -0.6, "{last}");
        assert!(last * super::super::behaviour::APP_SCORE_WEIGHT > -80.0);
    }
}
