//! Which local port a dial uses: libp2p's [`PortUse`].
//!
//! rust-libp2p's TCP transport dials with `PortUse::Reuse` by default (every `Swarm::dial`,
//! Kademlia's and gossipsub's included): the dial socket gets `SO_REUSEPORT` and is bound to
//! the listen address, so the peer sees our listen port as the source port. That helps NAT
//! traversal and little else; on loopback and in simulators it is a hazard (Shadow 3 does not
//! implement `SO_REUSEPORT`: every such bind fails with "Address already in use"). With
//! [`FreshPorts`] every dial takes a fresh ephemeral port (`PortUse::New`) — meshnode's default;
//! `meshnode run --port-reuse` restores libp2p's behaviour. Peers learn our listen address from
//! identify and Kademlia either way.

use libp2p::core::transport::{DialOpts, ListenerId, PortUse, TransportError, TransportEvent};
use libp2p::core::Transport;
use libp2p::Multiaddr;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A transport whose dials use `PortUse::New` unless `reuse` is set; all else is `inner`'s.
pub struct FreshPorts<T> {
    inner: T,
    reuse: bool,
}

impl<T> FreshPorts<T> {
    /// Wraps `inner`; with `reuse` true, dials keep the port use the swarm asked for.
    pub fn new(inner: T, reuse: bool) -> Self {
        FreshPorts { inner, reuse }
    }
}

impl<T: Transport + Unpin> Transport for FreshPorts<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        mut opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        if !self.reuse {
            opts.port_use = PortUse::New;
        }
        self.inner.dial(addr, opts)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}
