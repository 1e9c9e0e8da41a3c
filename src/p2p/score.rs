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
//!
//! **Nearby peers.** One positive term: a peer whose smallest ping round trip is well below the
//! median over this node's peers (by [`NEAR_MARGIN`] or more) gets [`NEAR_BONUS`]. Gossipsub
//! keeps a topic's best-scoring peers when it prunes a mesh above D_hi (`retain_scores`, 4)
//! and opportunistically grafts peers scoring above a weak mesh's median, so each mesh comes
//! to hold a node's nearest peers besides randomly chosen ones: a block reaches a distant node
//! through that node's nearest neighbours, over short links, rather than over whichever long
//! links a random mesh holds (BIP152 likewise picks as high-bandwidth peers those that deliver
//! blocks first). On a loopback devnet every round trip is alike and no peer gets it.

use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
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
/// What a nearby peer gets on top (×10 in gossipsub: +5, the opportunistic grafting
/// threshold). The topics' positive parts are capped at 20 so that all positive parts
/// together stay at 25, as before the bonus: one invalid block (-40) still puts any peer
/// below the gossip threshold (-10).
pub const NEAR_BONUS: f64 = 0.5;
/// How far below the median smallest round trip a peer's own must be to count as nearby
/// (10 ms: a region's round trips, not a loaded host's jitter).
pub const NEAR_MARGIN: Duration = Duration::from_millis(10);

/// The peers among `min_rtts` (each peer's smallest ping round trip) that are nearby: at least
/// [`NEAR_MARGIN`] below the median of them all (the lower middle one for an even count).
/// Fewer than 3 peers with a round trip: none.
pub fn near_peers(min_rtts: &[(PeerId, Duration)]) -> HashSet<PeerId> {
    if min_rtts.len() < 3 {
        return HashSet::new();
    }
    let mut sorted: Vec<Duration> = min_rtts.iter().map(|(_, d)| *d).collect();
    sorted.sort();
    let median = sorted[(sorted.len() - 1) / 2];
    min_rtts
        .iter()
        .filter(|(_, d)| *d + NEAR_MARGIN <= median)
        .map(|(p, _)| *p)
        .collect()
}

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

/// The application scores of every peer that has one (connected or not), and which connected
/// peers are nearby.
#[derive(Debug, Default)]
pub struct AppScores {
    scores: HashMap<PeerId, Entry>,
    near: HashSet<PeerId>,
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
    /// beyond [`FAILURE_TOLERANCE`], plus [`NEAR_BONUS`] if it is nearby).
    pub fn gossip(&self, peer: &PeerId, now: Instant) -> f64 {
        self.entry(peer, now).gossip() + self.bonus(peer)
    }

    fn bonus(&self, peer: &PeerId) -> f64 {
        if self.near.contains(peer) {
            NEAR_BONUS
        } else {
            0.0
        }
    }

    /// Whether `peer` is nearby (see [`near_peers`]).
    pub fn is_near(&self, peer: &PeerId) -> bool {
        self.near.contains(peer)
    }

    /// Takes the connected peers' smallest round trips (`min_rtts`) and returns the gossipsub
    /// value of each peer that became nearby or stopped being so.
    pub fn set_round_trips(
        &mut self,
        min_rtts: &[(PeerId, Duration)],
        now: Instant,
    ) -> Vec<(PeerId, f64)> {
        let near = near_peers(min_rtts);
        let changed: Vec<PeerId> = near.symmetric_difference(&self.near).copied().collect();
        self.near = near;
        changed
            .into_iter()
            .map(|p| (p, self.gossip(&p, now)))
            .collect()
    }

    /// A fault: lowers `peer`'s faults by `penalty` (≥ 0; a negative one is ignored), not
    /// below [`MIN_SCORE`]; returns the gossipsub value.
    pub fn penalize(&mut self, peer: PeerId, penalty: f64, now: Instant) -> f64 {
        let mut e = self.entry(&peer, now);
        e.faults = (e.faults - penalty.max(0.0)).max(MIN_SCORE);
        self.scores.insert(peer, e);
        e.gossip() + self.bonus(&peer)
    }

    /// A request `peer` left unanswered ([`FAILURE_PENALTY`]); returns the gossipsub value.
    pub fn failed(&mut self, peer: PeerId, now: Instant) -> f64 {
        let mut e = self.entry(&peer, now);
        e.failures = (e.failures - FAILURE_PENALTY).max(MIN_SCORE);
        self.scores.insert(peer, e);
        e.gossip() + self.bonus(&peer)
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
    /// each remaining peer's gossipsub value (and for each dropped one 0, or [`NEAR_BONUS`]
    /// if it is nearby), to hand to gossipsub.
    pub fn decay(&mut self, now: Instant) -> Vec<(PeerId, f64)> {
        let mut out = Vec::with_capacity(self.scores.len());
        let near = &self.near;
        self.scores.retain(|peer, e| {
            *e = e.decayed(now);
            let keep = e.faults + e.failures <= -FORGET_BELOW;
            let bonus = if near.contains(peer) { NEAR_BONUS } else { 0.0 };
            out.push((*peer, if keep { e.gossip() } else { 0.0 } + bonus));
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

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearby_peers_are_well_below_the_median_round_trip() {
        let p: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        // A europe node's peers on the `wan` profile: two in europe, the rest far away.
        let wan = [
            (p[0], ms(4)),
            (p[1], ms(5)),
            (p[2], ms(140)),
            (p[3], ms(120)),
            (p[4], ms(250)),
            (p[5], ms(221)),
        ];
        assert_eq!(near_peers(&wan), HashSet::from([p[0], p[1]]));
        // Loopback: round trips within a few ms of each other, nobody is nearby.
        let lan = [
            (p[0], ms(1)),
            (p[1], ms(2)),
            (p[2], ms(1)),
            (p[3], ms(9)),
            (p[4], ms(3)),
        ];
        assert!(near_peers(&lan).is_empty());
        // 10 ms below the median exactly counts; too few peers to tell: none.
        assert_eq!(
            near_peers(&[(p[0], ms(20)), (p[1], ms(30)), (p[2], ms(30))]),
            HashSet::from([p[0]])
        );
        assert!(near_peers(&[(p[0], ms(1)), (p[1], ms(300))]).is_empty());
    }

    #[test]
    fn the_nearby_bonus_adds_to_penalties_and_follows_the_round_trips() {
        let mut s = AppScores::default();
        let p: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let t0 = Instant::now();
        let changed = s.set_round_trips(&[(p[0], ms(4)), (p[1], ms(100)), (p[2], ms(120))], t0);
        assert_eq!(changed, vec![(p[0], NEAR_BONUS)]);
        assert_eq!(s.gossip(&p[0], t0), NEAR_BONUS);
        assert_eq!(s.gossip(&p[1], t0), 0.0);
        // A fault still costs in full: one bad reply puts a nearby peer at -9.5, not -10.
        assert_eq!(s.penalize(p[0], 1.0, t0), -1.0 + NEAR_BONUS);
        assert_eq!(s.get(&p[0], t0), -1.0);
        // Round trips that even out take the bonus away again (reported once).
        let changed = s.set_round_trips(&[(p[0], ms(100)), (p[1], ms(100)), (p[2], ms(120))], t0);
        assert_eq!(changed, vec![(p[0], -1.0)]);
        assert!(s
            .set_round_trips(&[(p[0], ms(100)), (p[1], ms(100)), (p[2], ms(120))], t0)
            .is_empty());
    }

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
