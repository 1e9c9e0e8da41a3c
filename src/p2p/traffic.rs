//! Per-peer traffic counters: Bitcoin Core `getpeerinfo`'s `bytessent`, `bytesrecv`,
//! `lastsend` and `lastrecv`.
//!
//! The transport's stream muxer is wrapped ([`CountingMuxer`]) once the connection is
//! authenticated, so every substream of every connection to a peer counts into that peer's
//! [`PeerTraffic`]: bytes are what the protocols (gossipsub, request-response, Kademlia,
//! identify, ping) read and write, after noise decryption and without yamux framing.
//! libp2p-metrics' bandwidth counters (`libp2p_bandwidth_bytes_total`) are per protocol, not
//! per peer, hence this small wrapper in their style (`libp2p-metrics/src/bandwidth.rs`).

use futures::io::{AsyncRead, AsyncWrite, IoSlice, IoSliceMut};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::PeerId;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

/// One peer's counters, shared by all its connections.
#[derive(Debug, Default)]
pub struct PeerTraffic {
    sent: AtomicU64,
    received: AtomicU64,
    last_send_ms: AtomicU64,
    last_recv_ms: AtomicU64,
}

impl PeerTraffic {
    fn on_send(&self, n: usize) {
        if n > 0 {
            self.sent.fetch_add(n as u64, Relaxed);
            self.last_send_ms.store(crate::now_ms(), Relaxed);
        }
    }

    fn on_recv(&self, n: usize) {
        if n > 0 {
            self.received.fetch_add(n as u64, Relaxed);
            self.last_recv_ms.store(crate::now_ms(), Relaxed);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> TrafficSnapshot {
        TrafficSnapshot {
            bytes_sent: self.sent.load(Relaxed),
            bytes_received: self.received.load(Relaxed),
            last_send_ms: self.last_send_ms.load(Relaxed),
            last_recv_ms: self.last_recv_ms.load(Relaxed),
        }
    }
}

/// A peer's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficSnapshot {
    /// Bytes written to the peer since it connected.
    pub bytes_sent: u64,
    /// Bytes read from the peer since it connected.
    pub bytes_received: u64,
    /// Last write, ms since the Unix epoch (0: never).
    pub last_send_ms: u64,
    /// Last read, ms since the Unix epoch (0: never).
    pub last_recv_ms: u64,
}

/// Every connected peer's counters. Cloned into the transport (which adds a peer when a
/// connection is authenticated) and kept by the network task (which reads and forgets them).
#[derive(Clone, Debug, Default)]
pub struct TrafficBook(Arc<Mutex<HashMap<PeerId, Arc<PeerTraffic>>>>);

impl TrafficBook {
    /// `peer`'s counters, created at 0 if it has none.
    pub fn entry(&self, peer: PeerId) -> Arc<PeerTraffic> {
        self.0
            .lock()
            .expect("traffic book lock poisoned")
            .entry(peer)
            .or_default()
            .clone()
    }

    /// `peer`'s counters now, if it has any.
    pub fn get(&self, peer: &PeerId) -> Option<TrafficSnapshot> {
        self.0
            .lock()
            .expect("traffic book lock poisoned")
            .get(peer)
            .map(|t| t.snapshot())
    }

    /// Drops `peer`'s counters (its last connection closed; a new one starts at 0, as in
    /// Bitcoin Core, where the counters belong to a connection).
    pub fn forget(&self, peer: &PeerId) {
        self.0
            .lock()
            .expect("traffic book lock poisoned")
            .remove(peer);
    }

    /// Wraps an authenticated connection's muxer so that it counts into `peer`'s counters.
    pub fn wrap<M>(&self, peer: PeerId, muxer: M) -> CountingMuxer<M> {
        CountingMuxer {
            inner: muxer,
            traffic: self.entry(peer),
        }
    }
}

/// A stream muxer whose substreams count what they read and write ([`TrafficBook::wrap`]).
pub struct CountingMuxer<M> {
    inner: M,
    traffic: Arc<PeerTraffic>,
}

impl<M> StreamMuxer for CountingMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = CountingStream<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let s = ready!(Pin::new(&mut this.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(CountingStream {
            inner: s,
            traffic: this.traffic.clone(),
        }))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let s = ready!(Pin::new(&mut this.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(CountingStream {
            inner: s,
            traffic: this.traffic.clone(),
        }))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A substream that counts into its peer's [`PeerTraffic`].
pub struct CountingStream<S> {
    inner: S,
    traffic: Arc<PeerTraffic>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.traffic.on_recv(n);
        Poll::Ready(Ok(n))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_read_vectored(cx, bufs))?;
        this.traffic.on_recv(n);
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.traffic.on_send(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.traffic.on_send(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::{AsyncReadExt, AsyncWriteExt, Cursor};

    #[test]
    fn a_stream_counts_reads_and_writes_into_its_peer() {
        let book = TrafficBook::default();
        let peer = PeerId::random();
        let before = crate::now_ms();
        let mut s = CountingStream {
            inner: Cursor::new(vec![7u8; 100]),
            traffic: book.entry(peer),
        };
        futures::executor::block_on(async {
            let mut buf = [0u8; 40];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&[1u8; 25]).await.unwrap();
        });
        let t = book.get(&peer).unwrap();
        assert_eq!((t.bytes_received, t.bytes_sent), (40, 25));
        assert!(t.last_recv_ms >= before && t.last_send_ms >= before);
        book.forget(&peer);
        assert_eq!(book.get(&peer), None);
    }
}
