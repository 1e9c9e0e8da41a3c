//! The peer manager: how many peers a node keeps, which peers discovery dials, and which
//! peers are dropped when there are too many.
//!
//! Three numbers, after Bitcoin Core (8 full-relay outbound slots, 125 connections in all,
//! inbound-only eviction) and Lighthouse (a target peer count, the excess pruned by score):
//! - **outbound target**: discovery (Kademlia random walks) dials until this many outbound
//!   slots are filled; a slot peer is never pruned. Connections Kademlia opens for its own
//!   queries are short-lived (Bitcoin Core's `addr-fetch` connections): when no slot is free
//!   they are closed after [`PRUNE_GRACE`], by the side that opened them.
//! - **target**: every [`PRUNE_INTERVAL`] the excess above this count is disconnected, the
//!   least useful first (see [`PeerManager::prune_candidates`]).
//! - **max**: the hard limit, enforced on every connection by rust-libp2p's
//!   `connection_limits` behaviour ([`PeerConfig::limits`]); inbound connections get
//!   `max − outbound target` of it, so inbound peers can never take the outbound slots.
//!
//! Bootnodes are for finding peers, not for keeping (Bitcoin Core's DNS seeds): a connection
//! to a bootnode is an `addr-fetch` connection, taken into a slot only when the routing table
//! offers no other peer — otherwise every node of a devnet would hold a slot on the same three
//! bootnodes.
//!
//! When the inbound slots are full, a refused connection evicts one inbound peer, the least
//! useful one connected for at least [`EVICT_GRACE`] (Bitcoin Core's
//! `AttemptToEvictConnection`), so that the newcomer's next attempt finds room: a node that
//! knows only full bootnodes would otherwise stay alone for good, since nobody else learns
//! its address.
//!
//! Half of the outbound slots (rounded down) go to the nearest peers the node has met
//! ([`PeerManager::take_nearer_slot`]): when a Kademlia query connection answers pings
//! [`NEAR_SLOT_MARGIN`] faster than the slowest of the nearest half of the slot peers, it
//! takes that peer's slot, and the peer it replaces becomes an `addr-fetch` connection, closed
//! at the next prune. This is Perigee's exploit/explore split (Mao et al., "Perigee: Efficient
//! Peer-to-Peer Network Design for Blockchains", PODC 2020) with the ping round trip as the
//! measure: a node whose region holds few others would otherwise reach them only through
//! distant peers, and the other half stays as discovery drew it, so the node keeps long links
//! and an attacker cannot take every slot by being close.
//!
//! A peer connected for less than [`PRUNE_GRACE`] is not pruned: a node that has just joined
//! through a full bootnode gets time to run its Kademlia queries there first. A peer that
//! discovery has lost (pruned, refused or gone) is not dialled again by discovery for
//! [`REDIAL_BACKOFF`], so that two nodes do not dial and prune each other in a loop.

use libp2p::connection_limits::ConnectionLimits;
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How often the excess above the target is pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(5);
/// A connection younger than this is never pruned.
pub const PRUNE_GRACE: Duration = Duration::from_secs(10);
/// A peer connected for less than this is never evicted to make room for a refused newcomer
/// ([`PeerManager::eviction_candidate`]): time enough for the newcomer's Kademlia bootstrap.
pub const EVICT_GRACE: Duration = Duration::from_secs(5);
/// At most one eviction this often, so that a flood of dialers churns the inbound slots
/// slowly.
pub const EVICT_INTERVAL: Duration = Duration::from_secs(1);
/// How much smaller (ping round trip, the smallest seen) a query connection's peer must be
/// than the slot peer it replaces ([`PeerManager::take_nearer_slot`]): 10 ms, well above the
/// noise of a loopback or LAN round trip, so a LAN devnet never swaps.
pub const NEAR_SLOT_MARGIN: Duration = Duration::from_millis(10);
/// After discovery loses a peer it does not dial it again for this long (RPC `addnode` and
/// bootnodes still may).
pub const REDIAL_BACKOFF: Duration = Duration::from_secs(60);

/// Peer counts (see the module doc). `target == 0` turns discovery and pruning off: the node
/// keeps exactly the connections it is given (bootnodes, RPC `addnode`, inbound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Peers kept; the excess is pruned. Default [`PeerConfig::DEFAULT_TARGET`].
    pub target: usize,
    /// Outbound peers discovery dials and pruning keeps. Default
    /// [`PeerConfig::DEFAULT_OUTBOUND`].
    pub outbound: usize,
    /// Hard limit on connected peers. Default [`PeerConfig::DEFAULT_MAX`].
    pub max: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            target: Self::DEFAULT_TARGET,
            outbound: Self::DEFAULT_OUTBOUND,
            max: Self::DEFAULT_MAX,
        }
    }
}

impl PeerConfig {
    /// Default target: 12 peers. With 4 outbound peers per node a devnet averages 8 peers
    /// per node (4 out, 4 in), so the target leaves room for uneven inbound counts without
    /// pruning, and a 256-node devnet is far from a full mesh.
    pub const DEFAULT_TARGET: usize = 12;
    /// Default outbound target: 4, the gossipsub mesh degree D, so that every node can fill
    /// its mesh with peers it chose itself.
    pub const DEFAULT_OUTBOUND: usize = 4;
    /// Default hard limit: 24 (twice the target): room for newcomers to bootstrap through a
    /// full node before the excess is pruned.
    pub const DEFAULT_MAX: usize = 24;

    /// No discovery, no pruning: the node keeps the connections it is given, up to `max`.
    pub fn static_only() -> Self {
        PeerConfig {
            target: 0,
            outbound: 0,
            max: Self::DEFAULT_MAX,
        }
    }

    /// Whether discovery (Kademlia) and pruning run.
    pub fn discovery(&self) -> bool {
        self.target > 0
    }

    /// Checks `outbound ≤ target ≤ max` (with `target == 0`, only `max ≥ 1`).
    pub fn validate(&self) -> Result<(), String> {
        if self.max == 0 {
            return Err("--max-peers must be at least 1".into());
        }
        if self.target > 0 && !(self.outbound <= self.target && self.target <= self.max) {
            return Err(format!(
                "peer counts must satisfy --outbound-peers ({}) <= --target-peers ({}) <= \
                 --max-peers ({})",
                self.outbound, self.target, self.max
            ));
        }
        Ok(())
    }

    /// The hard limits for rust-libp2p's `connection_limits` behaviour: `max` established
    /// connections, of which at most `max − outbound` inbound; at most `max` inbound
    /// handshakes in flight (noise costs CPU); at most 2 connections per peer (two nodes
    /// that dial each other at once keep both rather than each refusing one).
    pub fn limits(&self) -> ConnectionLimits {
        let max = u32::try_from(self.max).unwrap_or(u32::MAX);
        let inbound =
            u32::try_from(self.max.saturating_sub(self.outbound).max(1)).unwrap_or(u32::MAX);
        ConnectionLimits::default()
            .with_max_established(Some(max))
            .with_max_established_incoming(Some(inbound))
            .with_max_pending_incoming(Some(max))
            .with_max_established_per_peer(Some(2))
    }
}

/// What the node knows about a connected peer.
#[derive(Clone, Debug)]
pub struct PeerState {
    /// Remote address of the first connection.
    pub addr: Multiaddr,
    /// Whether the peer dialled us.
    pub inbound: bool,
    /// Connection time, seconds since the Unix epoch.
    pub conntime: u64,
    /// When the first connection was established (for [`PRUNE_GRACE`]).
    pub since: Instant,
    /// Identify agent version, once received.
    pub agent: Option<String>,
    /// Last ping round-trip time.
    pub rtt: Option<std::time::Duration>,
    /// Smallest ping round-trip time seen (Bitcoin Core's `minping`): the link's own delay,
    /// without the moments either host was busy.
    pub min_rtt: Option<std::time::Duration>,
    /// Open connections to the peer.
    pub connections: usize,
    /// What kind of connection this is.
    pub kind: ConnectionKind,
}

/// Why a peer is connected (Bitcoin Core's `connection_type` in `getpeerinfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionKind {
    /// The peer dialled us.
    Inbound,
    /// One of our outbound slots (dialled by discovery, a bootnode, or a Kademlia query
    /// connection taken into a free slot). Never pruned.
    OutboundSlot,
    /// Added by RPC `addnode` / `admin_addPeer`. Never pruned.
    Manual,
    /// Opened by a Kademlia query while every slot was taken: closed after [`PRUNE_GRACE`].
    AddrFetch,
}

impl ConnectionKind {
    /// Bitcoin Core's name: `inbound`, `outbound-full-relay`, `manual`, `addr-fetch`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Inbound => "inbound",
            ConnectionKind::OutboundSlot => "outbound-full-relay",
            ConnectionKind::Manual => "manual",
            ConnectionKind::AddrFetch => "addr-fetch",
        }
    }
}

/// Connected peers, dials in flight, and what pruning and discovery may do with them.
#[derive(Debug)]
pub struct PeerManager {
    cfg: PeerConfig,
    /// Connected peers.
    pub peers: HashMap<PeerId, PeerState>,
    dialing: HashSet<PeerId>,
    /// Peers removed by `admin_removePeer` / `addnode remove`: never dialled by discovery.
    removed: HashSet<PeerId>,
    /// Peers added by RPC `addnode` / `admin_addPeer`: never pruned.
    manual: HashSet<PeerId>,
    /// Peers discovery does not dial again before the instant.
    backoff: HashMap<PeerId, Instant>,
    /// Bootnodes: taken into slots only as a last resort.
    bootnodes: HashSet<PeerId>,
    /// Peers disconnected by pruning since start.
    pub pruned: u64,
    /// Inbound connections refused by the limits since start.
    pub denied: u64,
    /// Peers disconnected to make room for refused newcomers since start.
    pub evicted: u64,
    /// Outbound slots given to a nearer peer since start ([`PeerManager::take_nearer_slot`]).
    pub nearer: u64,
    /// When the last eviction happened ([`EVICT_INTERVAL`]).
    last_eviction: Option<Instant>,
    /// Outbound slots while a gossipsub mesh is short, above the configured ones
    /// ([`PeerManager::set_mesh_deficit`]).
    extra_outbound: usize,
}

impl PeerManager {
    /// An empty manager for `cfg`.
    pub fn new(cfg: PeerConfig) -> Self {
        PeerManager {
            cfg,
            peers: HashMap::new(),
            dialing: HashSet::new(),
            removed: HashSet::new(),
            manual: HashSet::new(),
            backoff: HashMap::new(),
            bootnodes: HashSet::new(),
            pruned: 0,
            extra_outbound: 0,
            denied: 0,
            evicted: 0,
            nearer: 0,
            last_eviction: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> PeerConfig {
        self.cfg
    }

    /// Marks `peer` as a bootnode.
    pub fn add_bootnode(&mut self, peer: PeerId) {
        self.bootnodes.insert(peer);
    }

    /// Whether `peer` is a bootnode.
    pub fn is_bootnode(&self, peer: &PeerId) -> bool {
        self.bootnodes.contains(peer)
    }

    /// Connected peers in outbound slots.
    pub fn outbound(&self) -> usize {
        self.count(ConnectionKind::OutboundSlot)
    }

    /// Connected peers of one kind.
    pub fn count(&self, kind: ConnectionKind) -> usize {
        self.peers.values().filter(|p| p.kind == kind).count()
    }

    /// A connection to `peer` was established. Returns true for the peer's first connection.
    /// An outbound connection takes the slot discovery reserved when it dialled; any other
    /// outbound connection (a bootnode, a Kademlia query) is an `addr-fetch` connection
    /// until [`PeerManager::promote_addr_fetch`] takes it into a free slot.
    pub fn on_connected(&mut self, peer: PeerId, addr: Multiaddr, inbound: bool) -> bool {
        let reserved = self.dialing.remove(&peer);
        let kind = if inbound {
            ConnectionKind::Inbound
        } else if self.manual.contains(&peer) {
            ConnectionKind::Manual
        } else if reserved {
            ConnectionKind::OutboundSlot
        } else {
            ConnectionKind::AddrFetch
        };
        let p = self.peers.entry(peer).or_insert_with(|| PeerState {
            addr,
            inbound,
            conntime: crate::now_ms() / 1000,
            since: Instant::now(),
            agent: None,
            rtt: None,
            min_rtt: None,
            connections: 0,
            kind,
        });
        p.connections += 1;
        p.connections == 1
    }

    /// A connection to `peer` closed, `remaining` stay open. Returns true when the peer is
    /// gone; discovery then leaves it alone for [`REDIAL_BACKOFF`].
    pub fn on_closed(&mut self, peer: PeerId, remaining: usize) -> bool {
        if remaining > 0 {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.connections = remaining;
            }
            return false;
        }
        self.backoff.insert(peer, Instant::now() + REDIAL_BACKOFF);
        self.peers.remove(&peer).is_some()
    }

    /// A dial to `peer` failed.
    pub fn on_dial_failed(&mut self, peer: PeerId) {
        self.dialing.remove(&peer);
        self.backoff.insert(peer, Instant::now() + REDIAL_BACKOFF);
    }

    /// `peer` was removed by RPC: discovery never dials it again, pruning forgets it.
    pub fn on_removed(&mut self, peer: PeerId) {
        self.removed.insert(peer);
        self.manual.remove(&peer);
    }

    /// `peer` was added by RPC: never pruned, no backoff.
    pub fn on_added(&mut self, peer: PeerId) {
        self.removed.remove(&peer);
        self.backoff.remove(&peer);
        self.manual.insert(peer);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.kind = ConnectionKind::Manual;
        }
    }

    /// Whether the outbound slots are full (dials in flight included), extra slots for a
    /// short mesh counted.
    pub fn outbound_full(&self) -> bool {
        self.outbound() + self.dialing.len() >= self.cfg.outbound + self.extra_outbound
    }

    /// Says that the gossipsub mesh of some topic has `missing` peers fewer than D_lo (0: every
    /// mesh is whole). A node whose few peers all have full meshes is pruned from them
    /// (gossipsub v1.1: a GRAFT to a mesh at D_hi is answered with PRUNE and a backoff) and can
    /// only fill its mesh from new peers, as Lighthouse dials more peers for a short mesh: while
    /// the node is below its target and every peer has been connected for [`PRUNE_GRACE`] (a
    /// mesh needs a heartbeat or two to form), `missing` outbound slots open beyond those in
    /// use, again after each grace period while the mesh stays short. Once every mesh is whole
    /// (or the target is reached) no slot beyond the configured ones stays open; peers already
    /// connected are kept.
    pub fn set_mesh_deficit(&mut self, missing: usize, now: Instant) {
        let settled = self
            .peers
            .values()
            .all(|p| now.saturating_duration_since(p.since) >= PRUNE_GRACE);
        if missing == 0 || self.peers.len() >= self.cfg.target {
            self.extra_outbound = 0;
        } else if settled && self.dialing.is_empty() {
            self.extra_outbound = (self.outbound() + missing).saturating_sub(self.cfg.outbound);
        }
    }

    /// Whether discovery should dial `peer` (found by a Kademlia walk) now: discovery on,
    /// an outbound slot free, the peer not a bootnode, not connected, not being dialled, not
    /// removed and not backing off. Records the dial (a reserved slot) when it answers yes.
    pub fn should_dial(&mut self, peer: PeerId, local: PeerId) -> bool {
        let now = Instant::now();
        self.backoff.retain(|_, until| *until > now);
        let yes = self.cfg.discovery()
            && peer != local
            && !self.bootnodes.contains(&peer)
            && !self.outbound_full()
            && self.peers.len() < self.cfg.max
            && !self.peers.contains_key(&peer)
            && !self.dialing.contains(&peer)
            && !self.removed.contains(&peer)
            && !self.backoff.contains_key(&peer);
        if yes {
            self.dialing.insert(peer);
        }
        yes
    }

    /// A dial recorded by [`PeerManager::should_dial`] could not even start.
    pub fn dial_not_started(&mut self, peer: PeerId) {
        self.dialing.remove(&peer);
    }

    /// The peers to disconnect now (none with discovery off): every `addr-fetch` connection
    /// older than [`PRUNE_GRACE`], then inbound peers until at most `target` remain.
    ///
    /// Never pruned: slot and manual peers, and peers connected for less than
    /// [`PRUNE_GRACE`]. Of the inbound peers, the least useful go first (Lighthouse prunes by
    /// score; Bitcoin Core's eviction protects peers that relay blocks): peers in no
    /// gossipsub mesh before mesh peers, then the lowest gossipsub score (`score`), then the
    /// most recently connected.
    pub fn prune_candidates(
        &self,
        now: Instant,
        in_mesh: impl Fn(&PeerId) -> bool,
        score: impl Fn(&PeerId) -> f64,
    ) -> Vec<PeerId> {
        if !self.cfg.discovery() {
            return Vec::new();
        }
        let old = |p: &PeerState| now.saturating_duration_since(p.since) >= PRUNE_GRACE;
        let mut out: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.kind == ConnectionKind::AddrFetch && old(p))
            .map(|(id, _)| *id)
            .collect();
        // Inbound peers in their grace period do not count yet: many of them are other nodes'
        // addr-fetch connections, which their dialers close; counting them would prune
        // settled peers in their place.
        let counted = self
            .peers
            .values()
            .filter(|p| match p.kind {
                ConnectionKind::AddrFetch => false,
                ConnectionKind::Inbound => old(p),
                ConnectionKind::OutboundSlot | ConnectionKind::Manual => true,
            })
            .count();
        if counted <= self.cfg.target {
            return out;
        }
        let excess = counted - self.cfg.target;
        let mut order: Vec<(bool, f64, Instant, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.kind == ConnectionKind::Inbound && old(p))
            .map(|(id, p)| (in_mesh(id), score(id), p.since, *id))
            .collect();
        // Ascending: not in mesh first, then low score, then newest (largest `since`) first.
        order.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(b.2.cmp(&a.2))
                .then(a.3.cmp(&b.3))
        });
        out.extend(order.into_iter().take(excess).map(|(_, _, _, id)| id));
        out
    }

    /// Moves `addr-fetch` connections, oldest first, into free outbound slots; bootnodes only
    /// when `bootnodes` is true. Returns how many moved.
    pub fn promote_addr_fetch(&mut self, bootnodes: bool) -> usize {
        let mut fetch: Vec<(Instant, PeerId)> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                p.kind == ConnectionKind::AddrFetch && (bootnodes || !self.bootnodes.contains(id))
            })
            .map(|(id, p)| (p.since, *id))
            .collect();
        fetch.sort();
        let mut moved = 0;
        for (_, id) in fetch {
            if self.outbound_full() {
                break;
            }
            if let Some(p) = self.peers.get_mut(&id) {
                p.kind = ConnectionKind::OutboundSlot;
                moved += 1;
            }
        }
        moved
    }

    /// Gives an outbound slot to a nearer peer (see the module doc), at most one per call:
    /// with discovery on and every one of the configured `outbound` slots taken by a peer
    /// whose smallest ping round trip is known, the slowest of the `outbound / 2` nearest
    /// slot peers is compared with the `addr-fetch` peers (bootnodes aside); the nearest of
    /// those, if it is [`NEAR_SLOT_MARGIN`] or more faster, takes the slot, and the slot peer
    /// becomes an `addr-fetch` connection (closed by the next prune). Returns (the new slot
    /// peer, the one it replaced).
    pub fn take_nearer_slot(&mut self) -> Option<(PeerId, PeerId)> {
        let near = self.cfg.outbound / 2;
        if !self.cfg.discovery() || near == 0 {
            return None;
        }
        let mut slots: Vec<(Duration, PeerId)> = Vec::new();
        for (id, p) in &self.peers {
            if p.kind == ConnectionKind::OutboundSlot {
                slots.push((p.min_rtt?, *id));
            }
        }
        if slots.len() < self.cfg.outbound {
            return None;
        }
        slots.sort();
        let (worst_near, replaced) = slots[near - 1];
        let (best, newcomer) = self
            .peers
            .iter()
            .filter(|(id, p)| p.kind == ConnectionKind::AddrFetch && !self.bootnodes.contains(id))
            .filter_map(|(id, p)| Some((p.min_rtt?, *id)))
            .min()?;
        if best + NEAR_SLOT_MARGIN > worst_near {
            return None;
        }
        if let Some(p) = self.peers.get_mut(&newcomer) {
            p.kind = ConnectionKind::OutboundSlot;
        }
        if let Some(p) = self.peers.get_mut(&replaced) {
            p.kind = ConnectionKind::AddrFetch;
        }
        self.nearer += 1;
        Some((newcomer, replaced))
    }

    /// Counts pruned peers (after the caller disconnected them).
    pub fn record_pruned(&mut self, n: usize) {
        self.pruned += n as u64;
    }

    /// The peer to disconnect after an inbound connection was refused at a full limit, so
    /// that the newcomer's next attempt finds room (Bitcoin Core's
    /// `AttemptToEvictConnection`); `None` with discovery off, within [`EVICT_INTERVAL`] of
    /// the last eviction, or when no peer qualifies. Records the eviction when it answers.
    ///
    /// Only peers connected for at least [`EVICT_GRACE`] qualify, and never slot or manual
    /// peers: with `inbound_full` (the inbound limit was hit) an inbound peer, else (the total
    /// limit) also one of our `addr-fetch` connections, which go first. Of the inbound
    /// peers, those in no gossipsub mesh (`in_mesh`) go before mesh peers, then the lowest
    /// gossipsub score (`score`), then the most recently connected. The `protect_mesh`
    /// longest-connected inbound mesh peers never go (Bitcoin Core protects the peers that
    /// relay it blocks and the longest-connected ones), so a flood of young dialers cannot
    /// evict the peers that relay blocks.
    pub fn eviction_candidate(
        &mut self,
        now: Instant,
        inbound_full: bool,
        protect_mesh: usize,
        in_mesh: impl Fn(&PeerId) -> bool,
        score: impl Fn(&PeerId) -> f64,
    ) -> Option<PeerId> {
        if !self.cfg.discovery()
            || self
                .last_eviction
                .is_some_and(|t| now.saturating_duration_since(t) < EVICT_INTERVAL)
        {
            return None;
        }
        let old = |p: &PeerState| now.saturating_duration_since(p.since) >= EVICT_GRACE;
        let fetch = (!inbound_full)
            .then(|| {
                self.peers
                    .iter()
                    .filter(|(_, p)| p.kind == ConnectionKind::AddrFetch && old(p))
                    .min_by_key(|(id, p)| (p.since, **id))
                    .map(|(id, _)| *id)
            })
            .flatten();
        let mut mesh: Vec<(Instant, PeerId)> = self
            .peers
            .iter()
            .filter(|(id, p)| p.kind == ConnectionKind::Inbound && in_mesh(id))
            .map(|(id, p)| (p.since, *id))
            .collect();
        mesh.sort();
        let protected: HashSet<PeerId> = mesh
            .into_iter()
            .take(protect_mesh)
            .map(|(_, id)| id)
            .collect();
        let victim = fetch.or_else(|| {
            self.peers
                .iter()
                .filter(|(id, p)| {
                    p.kind == ConnectionKind::Inbound && old(p) && !protected.contains(id)
                })
                .map(|(id, p)| (in_mesh(id), score(id), p.since, *id))
                .min_by(|a, b| {
                    a.0.cmp(&b.0)
                        .then(a.1.total_cmp(&b.1))
                        .then(b.2.cmp(&a.2))
                        .then(a.3.cmp(&b.3))
                })
                .map(|(_, _, _, id)| id)
        })?;
        self.last_eviction = Some(now);
        self.evicted += 1;
        Some(victim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(target: usize, outbound: usize, max: usize) -> PeerManager {
        PeerManager::new(PeerConfig {
            target,
            outbound,
            max,
        })
    }

    fn connect(m: &mut PeerManager, inbound: bool, age: Duration) -> PeerId {
        let p = PeerId::random();
        if !inbound {
            // Discovery reserves a slot while one is free; beyond, an addr-fetch connection.
            m.should_dial(p, PeerId::random());
        }
        m.on_connected(p, "/ip4/127.0.0.1/tcp/1".parse().unwrap(), inbound);
        m.peers.get_mut(&p).unwrap().since = Instant::now() - age;
        p
    }

    const OLD: Duration = Duration::from_secs(60);

    #[test]
    fn a_short_mesh_opens_extra_outbound_slots_only_when_settled_and_below_target() {
        let mut m = manager(6, 2, 10);
        connect(&mut m, false, OLD);
        connect(&mut m, false, OLD);
        assert!(m.outbound_full());
        // Mesh two short, peers settled, 2 of target 6: two more slots.
        m.set_mesh_deficit(2, Instant::now());
        assert!(!m.outbound_full());
        let extra = connect(&mut m, false, OLD);
        assert_eq!(m.peers[&extra].kind, ConnectionKind::OutboundSlot);
        connect(&mut m, false, OLD);
        assert!(m.outbound_full());
        // Still short once they are settled: slots open beyond those in use again.
        m.set_mesh_deficit(1, Instant::now());
        assert!(!m.outbound_full());
        // A young peer: its mesh may still form, no new slot.
        connect(&mut m, false, Duration::from_secs(1));
        m.set_mesh_deficit(1, Instant::now());
        assert!(m.outbound_full());
        // The mesh whole: the slots close.
        m.set_mesh_deficit(0, Instant::now());
        assert!(m.outbound_full());
        assert_eq!(m.extra_outbound, 0);
        // At the target: none.
        connect(&mut m, true, OLD);
        m.set_mesh_deficit(3, Instant::now());
        assert!(m.outbound_full());
    }

    #[test]
    fn prunes_addr_fetch_then_the_inbound_excess_least_useful_first() {
        let mut m = manager(4, 2, 10);
        let out_a = connect(&mut m, false, OLD);
        let out_b = connect(&mut m, false, OLD);
        let fetch = connect(&mut m, false, OLD);
        let fetch_young = connect(&mut m, false, Duration::from_secs(1));
        assert_eq!(m.peers[&out_a].kind, ConnectionKind::OutboundSlot);
        assert_eq!(m.peers[&fetch].kind, ConnectionKind::AddrFetch);
        let in_mesh = connect(&mut m, true, OLD);
        let in_good = connect(&mut m, true, OLD);
        let in_bad = connect(&mut m, true, OLD);
        let young = connect(&mut m, true, Duration::from_secs(1));
        // The old addr-fetch connection goes. Counted against the target 4: 2 slots and 3
        // old inbound peers (`young` is in its grace period), so the worst inbound one goes.
        let mesh = [in_mesh, out_a];
        let score = |p: &PeerId| {
            if *p == in_bad {
                -50.0
            } else if *p == in_good {
                5.0
            } else {
                0.0
            }
        };
        let pruned = m.prune_candidates(Instant::now(), |p| mesh.contains(p), score);
        assert_eq!(pruned, vec![fetch, in_bad], "{pruned:?}");
        for kept in [out_a, out_b, young, fetch_young, in_mesh, in_good] {
            assert!(!pruned.contains(&kept));
        }
    }

    #[test]
    fn nothing_pruned_at_or_below_target_or_without_discovery() {
        let mut m = manager(3, 1, 10);
        for _ in 0..3 {
            connect(&mut m, true, OLD);
        }
        assert!(m
            .prune_candidates(Instant::now(), |_| false, |_| 0.0)
            .is_empty());
        let mut s = PeerManager::new(PeerConfig::static_only());
        for _ in 0..20 {
            connect(&mut s, true, OLD);
        }
        assert!(s
            .prune_candidates(Instant::now(), |_| false, |_| 0.0)
            .is_empty());
    }

    #[test]
    fn manual_peers_are_never_pruned() {
        let mut m = manager(1, 1, 10);
        let a = connect(&mut m, true, OLD);
        let b = connect(&mut m, true, OLD);
        m.on_added(a);
        assert_eq!(
            m.prune_candidates(Instant::now(), |_| false, |_| 0.0),
            vec![b]
        );
    }

    #[test]
    fn discovery_dials_up_to_the_outbound_target_and_backs_off_lost_peers() {
        let me = PeerId::random();
        let mut m = manager(4, 2, 10);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert!(m.should_dial(a, me));
        assert!(!m.should_dial(a, me), "already dialling");
        assert!(m.should_dial(b, me));
        assert!(!m.should_dial(c, me), "outbound slots full");
        assert!(!m.should_dial(me, me));
        m.on_connected(a, "/ip4/127.0.0.1/tcp/1".parse().unwrap(), false);
        assert_eq!(m.peers[&a].kind, ConnectionKind::OutboundSlot);
        m.on_dial_failed(b);
        assert!(!m.should_dial(b, me), "backing off after a failed dial");
        assert!(m.should_dial(c, me));
        m.on_closed(a, 0);
        assert!(!m.should_dial(a, me), "backing off a lost peer");
        m.on_added(a);
        m.dial_not_started(c);
        assert!(m.should_dial(a, me) || m.peers.contains_key(&a));
    }

    #[test]
    fn bootnodes_fill_slots_only_as_a_last_resort() {
        let me = PeerId::random();
        let mut m = manager(4, 2, 10);
        let boot = PeerId::random();
        m.add_bootnode(boot);
        assert!(
            !m.should_dial(boot, me),
            "discovery does not dial bootnodes into slots"
        );
        m.on_connected(boot, "/ip4/127.0.0.1/tcp/1".parse().unwrap(), false);
        assert_eq!(m.peers[&boot].kind, ConnectionKind::AddrFetch);
        let query = PeerId::random();
        m.on_connected(query, "/ip4/127.0.0.1/tcp/2".parse().unwrap(), false);
        assert_eq!(m.promote_addr_fetch(false), 1);
        assert_eq!(m.peers[&query].kind, ConnectionKind::OutboundSlot);
        assert_eq!(m.peers[&boot].kind, ConnectionKind::AddrFetch);
        assert_eq!(m.promote_addr_fetch(true), 1);
        assert_eq!(m.peers[&boot].kind, ConnectionKind::OutboundSlot);
        assert!(m.outbound_full());
    }

    #[test]
    fn a_refused_newcomer_evicts_the_least_useful_settled_inbound_peer() {
        let mut m = manager(4, 1, 8);
        let slot = connect(&mut m, false, OLD);
        let fetch = connect(&mut m, false, OLD);
        assert_eq!(m.peers[&fetch].kind, ConnectionKind::AddrFetch);
        let mesh_oldest = connect(&mut m, true, Duration::from_secs(90));
        let mesh_old = connect(&mut m, true, OLD);
        let plain_old = connect(&mut m, true, OLD);
        let plain_newer = connect(&mut m, true, Duration::from_secs(30));
        let young = connect(&mut m, true, Duration::ZERO);
        let in_mesh = |p: &PeerId| *p == mesh_old || *p == mesh_oldest;
        let now = Instant::now();
        // The inbound limit: an inbound peer must go, the newest settled one not in a mesh.
        assert_eq!(
            m.eviction_candidate(now, true, 1, in_mesh, |_| 0.0),
            Some(plain_newer)
        );
        assert_eq!(
            m.eviction_candidate(now, true, 1, in_mesh, |_| 0.0),
            None,
            "one eviction per interval"
        );
        let later = now + EVICT_INTERVAL;
        // The total limit: our own addr-fetch connection goes first.
        assert_eq!(
            m.eviction_candidate(later, false, 1, in_mesh, |_| 0.0),
            Some(fetch)
        );
        m.peers.remove(&fetch);
        m.peers.remove(&plain_newer);
        // A low score goes first.
        let later = later + EVICT_INTERVAL;
        let low = |p: &PeerId| if *p == plain_old { -1.0 } else { 0.0 };
        assert_eq!(
            m.eviction_candidate(later, true, 1, in_mesh, low),
            Some(plain_old)
        );
        m.peers.remove(&plain_old);
        // Then mesh peers, but never the longest-connected protected ones, the slot or the
        // young.
        let later = later + EVICT_INTERVAL;
        assert_eq!(m.eviction_candidate(later, true, 2, in_mesh, |_| 0.0), None);
        assert_eq!(
            m.eviction_candidate(later, true, 1, in_mesh, |_| 0.0),
            Some(mesh_old)
        );
        m.peers.remove(&mesh_old);
        let later = later + EVICT_INTERVAL;
        assert_eq!(
            m.eviction_candidate(later, false, 1, in_mesh, |_| 0.0),
            None
        );
        assert!([slot, young, mesh_oldest]
            .iter()
            .all(|p| m.peers.contains_key(p)));
        assert_eq!(m.evicted, 4);
        // Discovery off: the node keeps what it is given.
        let mut s = PeerManager::new(PeerConfig::static_only());
        connect(&mut s, true, OLD);
        assert_eq!(
            s.eviction_candidate(later, true, 0, |_| false, |_| 0.0),
            None
        );
    }

    #[test]
    fn a_nearer_query_peer_takes_the_slowest_of_the_near_half_of_the_slots() {
        let ms = Duration::from_millis;
        let mut m = manager(12, 4, 24);
        let rtt = |m: &mut PeerManager, p: PeerId, d: Duration| {
            m.peers.get_mut(&p).unwrap().min_rtt = Some(d);
        };
        let slots: Vec<PeerId> = (0..4).map(|_| connect(&mut m, false, OLD)).collect();
        for (p, d) in slots.iter().zip([250, 120, 300, 140]) {
            rtt(&mut m, *p, ms(d));
        }
        let fetch = connect(&mut m, false, OLD);
        assert_eq!(m.peers[&fetch].kind, ConnectionKind::AddrFetch);
        // Its round trip unknown: nothing moves.
        assert_eq!(m.take_nearer_slot(), None);
        // Not 10 ms faster than 140 ms (the slower of the two nearest slots): nothing moves.
        rtt(&mut m, fetch, ms(131));
        assert_eq!(m.take_nearer_slot(), None);
        // 10 ms faster: it takes the 140 ms peer's slot, which becomes addr-fetch (pruned).
        rtt(&mut m, fetch, ms(130));
        assert_eq!(m.take_nearer_slot(), Some((fetch, slots[3])));
        assert_eq!(m.peers[&fetch].kind, ConnectionKind::OutboundSlot);
        assert_eq!(m.peers[&slots[3]].kind, ConnectionKind::AddrFetch);
        assert_eq!(m.outbound(), 4);
        assert_eq!(m.nearer, 1);
        assert!(m
            .prune_candidates(Instant::now(), |_| false, |_| 0.0)
            .contains(&slots[3]));
        // The far half (250, 300 ms) is never replaced: now 120 and 130 ms are the near half.
        let far_fetch = connect(&mut m, false, OLD);
        rtt(&mut m, far_fetch, ms(125));
        assert_eq!(m.take_nearer_slot(), None);
        // A bootnode never takes a slot this way.
        let boot = PeerId::random();
        m.add_bootnode(boot);
        m.on_connected(boot, "/ip4/127.0.0.1/tcp/2".parse().unwrap(), false);
        rtt(&mut m, boot, ms(1));
        assert_eq!(m.take_nearer_slot(), None);
        // A slot whose round trip is unknown: nothing moves until it is known.
        let mut n = manager(12, 4, 24);
        let s: Vec<PeerId> = (0..4).map(|_| connect(&mut n, false, OLD)).collect();
        for p in &s[..3] {
            rtt(&mut n, *p, ms(200));
        }
        let f = connect(&mut n, false, OLD);
        rtt(&mut n, f, ms(5));
        assert_eq!(n.take_nearer_slot(), None);
        rtt(&mut n, s[3], ms(200));
        assert!(n.take_nearer_slot().is_some());
        // Discovery off: never.
        let mut st = PeerManager::new(PeerConfig::static_only());
        assert_eq!(st.take_nearer_slot(), None);
    }

    #[test]
    fn config_is_checked() {
        assert!(PeerConfig::default().validate().is_ok());
        assert!(PeerConfig::static_only().validate().is_ok());
        let bad = PeerConfig {
            target: 4,
            outbound: 8,
            max: 24,
        };
        assert!(bad.validate().is_err());
        let bad = PeerConfig {
            target: 30,
            outbound: 4,
            max: 24,
        };
        assert!(bad.validate().is_err());
    }
}
