//! Bans: which peers (by peer id) and hosts (by IP) this node refuses, until when and why.
//!
//! A peer is banned when its gossipsub score falls below the graylist threshold (gossipsub
//! v1.1 spec §"Score Thresholds": below it, a peer's messages are ignored anyway) or when it
//! sends [`REJECTS_TO_BAN`] messages we Reject within [`REJECT_WINDOW`]; by RPC with `setban`
//! (Bitcoin Core's name). The network task enforces a ban: rust-libp2p's `allow_block_list`
//! refuses the peer id, established connections from a banned IP are closed at once, and
//! bans expire by themselves. Loopback addresses are never banned by IP, since a devnet puts
//! every node on 127.0.0.1; the peer id ban applies there.

use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Messages we Reject from one peer within [`REJECT_WINDOW`] that get it banned.
pub const REJECTS_TO_BAN: usize = 20;
/// The window for [`REJECTS_TO_BAN`].
pub const REJECT_WINDOW: Duration = Duration::from_secs(10);
/// Default ban length: Bitcoin Core's `-bantime` (24 h).
pub const DEFAULT_BAN_TIME: Duration = Duration::from_secs(24 * 3600);

/// What a ban applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BanTarget {
    /// One libp2p identity.
    Peer(PeerId),
    /// Every connection from one IP address.
    Ip(IpAddr),
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanTarget::Peer(p) => write!(f, "{p}"),
            BanTarget::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl std::str::FromStr for BanTarget {
    type Err = String;
    /// A peer id (`12D3Koo…`) or an IP address (`203.0.113.7`, `2001:db8::1`).
    fn from_str(s: &str) -> Result<BanTarget, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(BanTarget::Ip(ip));
        }
        s.parse::<PeerId>()
            .map(BanTarget::Peer)
            .map_err(|_| format!("{s:?} is neither a peer id nor an IP address"))
    }
}

/// One ban as `listbanned` shows it (Bitcoin Core's fields, plus `reason`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BanInfo {
    /// The peer id or IP address.
    pub address: String,
    /// When it was banned, seconds since the Unix epoch.
    pub ban_created: u64,
    /// Until when, seconds since the Unix epoch.
    pub banned_until: u64,
    /// Its length, seconds.
    pub ban_duration: u64,
    /// Seconds left.
    pub time_remaining: u64,
    /// Why: the score or the count that triggered it, or "manual" (`setban`).
    pub reason: String,
}

#[derive(Clone, Debug)]
struct Ban {
    created_unix: u64,
    until: Instant,
    duration: Duration,
    reason: String,
}

/// The ban list and the recent Rejects per peer.
#[derive(Debug, Default)]
pub struct BanList {
    bans: HashMap<BanTarget, Ban>,
    rejects: HashMap<PeerId, VecDeque<Instant>>,
}

impl BanList {
    /// Records a Reject of `peer`'s message at `now`; true when that makes
    /// [`REJECTS_TO_BAN`] within [`REJECT_WINDOW`].
    pub fn on_reject(&mut self, peer: PeerId, now: Instant) -> bool {
        let q = self.rejects.entry(peer).or_default();
        q.push_back(now);
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > REJECT_WINDOW)
        {
            q.pop_front();
        }
        q.len() >= REJECTS_TO_BAN
    }

    /// Forgets a disconnected peer's recent Rejects.
    pub fn forget(&mut self, peer: &PeerId) {
        self.rejects.remove(peer);
    }

    /// Bans `target` for `duration` from `now` (replacing an earlier ban of it). Returns false
    /// for a loopback IP, which is never banned.
    pub fn ban(
        &mut self,
        target: BanTarget,
        duration: Duration,
        reason: String,
        now: Instant,
    ) -> bool {
        if let BanTarget::Ip(ip) = target {
            if ip.is_loopback() {
                return false;
            }
        }
        if let BanTarget::Peer(p) = target {
            self.rejects.remove(&p);
        }
        self.bans.insert(
            target,
            Ban {
                created_unix: crate::now_ms() / 1000,
                until: now + duration,
                duration,
                reason,
            },
        );
        true
    }

    /// Lifts the ban of `target`; whether there was one.
    pub fn unban(&mut self, target: &BanTarget) -> bool {
        self.bans.remove(target).is_some()
    }

    /// Lifts every ban; returns the targets.
    pub fn clear(&mut self) -> Vec<BanTarget> {
        self.bans.drain().map(|(t, _)| t).collect()
    }

    /// Removes the bans that ended by `now`; returns their targets.
    pub fn expire(&mut self, now: Instant) -> Vec<BanTarget> {
        let gone: Vec<BanTarget> = self
            .bans
            .iter()
            .filter(|(_, b)| b.until <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in &gone {
            self.bans.remove(t);
        }
        gone
    }

    /// Whether `peer` is banned by its id.
    pub fn is_peer_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(&BanTarget::Peer(*peer))
    }

    /// Whether connections from `ip` are refused.
    pub fn is_ip_banned(&self, ip: &IpAddr) -> bool {
        self.bans.contains_key(&BanTarget::Ip(*ip))
    }

    /// Every ban, soonest to end first.
    pub fn list(&self, now: Instant) -> Vec<BanInfo> {
        let mut v: Vec<(Instant, BanInfo)> = self
            .bans
            .iter()
            .map(|(t, b)| {
                let left = b.until.saturating_duration_since(now).as_secs();
                (
                    b.until,
                    BanInfo {
                        address: t.to_string(),
                        ban_created: b.created_unix,
                        banned_until: b.created_unix + b.duration.as_secs(),
                        ban_duration: b.duration.as_secs(),
                        time_remaining: left,
                        reason: b.reason.clone(),
                    },
                )
            })
            .collect();
        v.sort_by_key(|(until, _)| *until);
        v.into_iter().map(|(_, b)| b).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_in_a_window_trigger_a_ban_and_old_ones_fall_out() {
        let mut l = BanList::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        for i in 0..REJECTS_TO_BAN - 1 {
            assert!(!l.on_reject(p, t0 + Duration::from_millis(i as u64)));
        }
        // Long after: the earlier ones no longer count.
        assert!(!l.on_reject(p, t0 + REJECT_WINDOW * 2));
        let t1 = t0 + REJECT_WINDOW * 3;
        let mut banned = false;
        for _ in 0..REJECTS_TO_BAN {
            banned = l.on_reject(p, t1);
        }
        assert!(banned);
    }

    #[test]
    fn bans_expire_list_and_never_take_loopback() {
        let mut l = BanList::default();
        let now = Instant::now();
        let p = PeerId::random();
        assert!(l.ban(BanTarget::Peer(p), Duration::from_secs(60), "x".into(), now));
        assert!(!l.ban(
            BanTarget::Ip("127.0.0.1".parse().unwrap()),
            Duration::from_secs(60),
            "x".into(),
            now
        ));
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(l.ban(
            BanTarget::Ip(ip),
            Duration::from_secs(5),
            "manual".into(),
            now
        ));
        assert!(l.is_peer_banned(&p) && l.is_ip_banned(&ip));
        let list = l.list(now);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].address, "203.0.113.7");
        assert_eq!(list[0].time_remaining, 5);
        assert_eq!(
            l.expire(now + Duration::from_secs(10)),
            vec![BanTarget::Ip(ip)]
        );
        assert!(l.is_peer_banned(&p));
        assert!(l.unban(&BanTarget::Peer(p)));
        assert!(l.list(now).is_empty());
        assert_eq!("203.0.113.7".parse::<BanTarget>(), Ok(BanTarget::Ip(ip)));
        assert!("nope".parse::<BanTarget>().is_err());
    }
}
