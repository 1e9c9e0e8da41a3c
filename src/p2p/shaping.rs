//! Link shaping in the node: the bytes of every TCP connection, below noise and yamux, wait
//! the link's one-way delay (± jitter) and are paced at the node's upload and download
//! bandwidth, so that a loopback devnet behaves like nodes spread over a wide-area network
//! without root or the kernel's `sch_netem`.
//!
//! The model, per connection between this node (region `a`) and a peer (region `b`):
//! - what this node sends is paced by its upload bucket (one per node, shared by every
//!   connection: a host's uplink, as Shadow's `bandwidth_up`);
//! - what it receives is paced by its download bucket (`bandwidth_down`);
//! - the one-way delays `a → b` and `b → a` are both applied by the side that dialed (it knows
//!   the peer's region from the address it dialed; see [`super::profile`]), on its writes and
//!   on its reads respectively, so each direction is delayed exactly once whatever the
//!   listener knows about the dialer's address. A libp2p ping therefore measures
//!   `delay(a→b) + delay(b→a)` plus the hosts' own time.
//!
//! Loss is not modelled here (TCP would hide it as delay; the netns devnet drops packets in
//! the kernel). Delays are timed by one clock thread per process that sleeps on a condition
//! variable (sub-millisecond precision; tokio's timer rounds up to whole milliseconds, which
//! would add up to 2 ms to a 4 ms round trip).

use super::profile::LinkProfile;
use futures::future::Either;
use libp2p::core::ConnectedPoint;
use libp2p::Multiaddr;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// Largest chunk read at a time: the unit of pacing (a 16 KiB chunk takes 2.6 ms at 50 Mbit/s).
const CHUNK: usize = 16 * 1024;
/// Waits shorter than this are skipped (what a wake-up through the clock thread costs).
const WAKE_COST: Duration = Duration::from_micros(100);
/// Most a deadline fires early to make up for the hand-over to the runtime (~0.15 ms
/// measured on a 2-core VM; capped so that a busy spell cannot make later sleeps end early).
const MAX_LEAD: Duration = Duration::from_micros(150);
/// Chunks in flight per direction of a connection (what the "wire" holds: 4 MiB).
const IN_FLIGHT: usize = 256;

/// How this node shapes its links: its region in a profile and its bandwidth caps.
#[derive(Clone, Debug)]
pub struct LinkShape {
    /// The profile (delays between regions, jitter).
    pub profile: LinkProfile,
    /// This node's region (from its listen address); `None`: links get no delay.
    pub region: Option<usize>,
    /// This node's bandwidth class (index into the profile's classes).
    pub class: usize,
    /// Upload cap, bytes/s (`None`: unlimited).
    pub up_bps: Option<f64>,
    /// Download cap, bytes/s (`None`: unlimited).
    pub down_bps: Option<f64>,
}

impl LinkShape {
    /// This node in `profile`: region from the first listen address that has one, the caps of
    /// `class` (the profile's default class when `None`).
    ///
    /// # Errors
    /// An unknown class.
    pub fn new(
        profile: LinkProfile,
        listen: &[Multiaddr],
        class: Option<&str>,
    ) -> Result<LinkShape, super::profile::ProfileError> {
        let class = match class {
            Some(name) => profile.class_index(name)?,
            None => profile.default_class(),
        };
        let (up_bps, down_bps) = profile.class_rates(class);
        let region = listen.iter().find_map(|a| profile.region_of(a));
        Ok(LinkShape {
            profile,
            region,
            class,
            up_bps,
            down_bps,
        })
    }

    /// What `meshnode_nodeInfo` reports as `link`.
    pub fn info(&self) -> LinkInfo {
        LinkInfo {
            profile: self.profile.name.clone(),
            region: self.region.map(|r| self.profile.regions[r].name.clone()),
            class: self.profile.classes[self.class].name.clone(),
            up_bytes_per_s: self.up_bps,
            down_bytes_per_s: self.down_bps,
            delay_ms: self
                .region
                .map(|r| self.profile.regions[r].delay_ms.clone())
                .unwrap_or_default(),
            regions: self
                .profile
                .regions
                .iter()
                .map(|r| r.name.clone())
                .collect(),
        }
    }

    /// One-way delays (out, in) of a connection.
    fn delays(&self, endpoint: &ConnectedPoint) -> (Duration, Duration) {
        match (endpoint, self.region) {
            (ConnectedPoint::Dialer { address, .. }, Some(a)) => {
                match self.profile.region_of(address) {
                    Some(b) => (self.profile.delay(a, b), self.profile.delay(b, a)),
                    None => (Duration::ZERO, Duration::ZERO),
                }
            }
            _ => (Duration::ZERO, Duration::ZERO),
        }
    }
}

/// The file in a data dir holding a node's [`LinkInfo`] as JSON, for runs measured after the
/// fact (`devnet --shadow` writes it; `bench propagation --from-dirs` reads it).
pub const LINK_FILE: &str = "link.json";

/// A node's place in its link profile, as `meshnode_nodeInfo` reports it (`link`): enough
/// for a bench attached over RPC to compute the physical bound of a delivery path.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LinkInfo {
    /// Profile name.
    pub profile: String,
    /// This node's region (None: outside the profile's addresses, links unshaped).
    pub region: Option<String>,
    /// Bandwidth class.
    pub class: String,
    /// Upload cap, bytes/s (None: unlimited).
    pub up_bytes_per_s: Option<f64>,
    /// Download cap, bytes/s (None: unlimited).
    pub down_bytes_per_s: Option<f64>,
    /// One-way delay from this node's region to each region of `regions`, ms.
    pub delay_ms: Vec<f64>,
    /// The profile's regions, in matrix order.
    pub regions: Vec<String>,
}

impl LinkInfo {
    /// One-way delay from this node to a node in region `to`, ms (0 when either is outside
    /// the profile).
    pub fn delay_to(&self, to: Option<&str>) -> f64 {
        to.and_then(|t| self.regions.iter().position(|r| r == t))
            .and_then(|i| self.delay_ms.get(i).copied())
            .unwrap_or(0.0)
    }
}

/// A node's shaper: its [`LinkShape`] and its two bandwidth buckets. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shaper {
    shape: Arc<LinkShape>,
    up: Arc<Bucket>,
    down: Arc<Bucket>,
}

/// A connection's byte stream, shaped or not.
pub type MaybeShaped<S> = Either<S, Compat<tokio::io::DuplexStream>>;

impl Shaper {
    /// A shaper for this node.
    pub fn new(shape: LinkShape) -> Shaper {
        Shaper {
            up: Arc::new(Bucket::new(shape.up_bps)),
            down: Arc::new(Bucket::new(shape.down_bps)),
            shape: Arc::new(shape),
        }
    }

    /// Wraps a new connection's TCP stream: unchanged when the link has neither delay nor
    /// bandwidth cap; otherwise the node gets one end of an in-memory pipe and four tasks
    /// move the bytes between the pipe and the socket at the link's pace (they end when
    /// either side closes). Must be called inside a tokio runtime.
    pub fn wrap(
        &self,
        stream: libp2p::tcp::tokio::TcpStream,
        endpoint: &ConnectedPoint,
    ) -> MaybeShaped<libp2p::tcp::tokio::TcpStream> {
        let (out_delay, in_delay) = self.shape.delays(endpoint);
        let idle = out_delay.is_zero()
            && in_delay.is_zero()
            && self.up.rate.is_none()
            && self.down.rate.is_none()
            && self.shape.profile.jitter_ms == 0.0;
        if idle {
            return Either::Left(stream);
        }
        let jitter = Duration::from_secs_f64(self.shape.profile.jitter_ms / 1e3);
        let (near, far) = tokio::io::duplex(4 * CHUNK);
        let (tcp_read, tcp_write) = stream.0.into_split();
        let (far_read, far_write) = tokio::io::split(far);
        // Out: pace at our upload, then the wire's delay.
        pipe(
            far_read,
            tcp_write,
            {
                let up = self.up.clone();
                let mut line = Line::new(out_delay, jitter);
                move |n| line.release(up.reserve(n, Instant::now()))
            },
            None,
        );
        // In: the wire's delay, then our download, in the order bytes arrive from all links.
        pipe(
            tcp_read,
            far_write,
            {
                let mut line = Line::new(in_delay, jitter);
                move |_| line.release(Instant::now())
            },
            Some(self.down.clone()),
        );
        Either::Right(near.compat())
    }
}

/// One direction of a link: a fixed delay, jitter, and no overtaking (TCP delivers in order).
struct Line {
    delay: Duration,
    jitter: Duration,
    last: Option<Instant>,
    rng: u64,
}

impl Line {
    fn new(delay: Duration, jitter: Duration) -> Line {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Line {
            delay,
            jitter,
            last: None,
            rng: u64::from_le_bytes(seed) | 1,
        }
    }

    /// When bytes that left at `sent` arrive.
    fn release(&mut self, sent: Instant) -> Instant {
        let mut at = sent + self.delay;
        if !self.jitter.is_zero() {
            // xorshift64: uniform in [-jitter, +jitter].
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let u = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
            let j = self.jitter.as_secs_f64() * (2.0 * u - 1.0);
            at = if j >= 0.0 {
                at + Duration::from_secs_f64(j)
            } else {
                at.checked_sub(Duration::from_secs_f64(-j)).unwrap_or(sent)
            };
        }
        let at = self.last.map_or(at, |l| at.max(l));
        self.last = Some(at);
        at
    }
}

/// A node-wide bandwidth cap: bytes go out one after another at `rate` bytes/s (a queue
/// draining at the link rate, as a host's uplink).
#[derive(Debug)]
struct Bucket {
    rate: Option<f64>,
    /// When the queue is empty again. Held only to read and bump (no `.await` under it).
    free_at: Mutex<Option<Instant>>,
}

impl Bucket {
    fn new(rate: Option<f64>) -> Bucket {
        Bucket {
            rate,
            free_at: Mutex::new(None),
        }
    }

    /// Queues `n` bytes ready at `ready`; returns when the last of them has gone.
    fn reserve(&self, n: usize, ready: Instant) -> Instant {
        let Some(rate) = self.rate else {
            return ready;
        };
        let mut free = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = free.map_or(ready, |f| f.max(ready));
        let done = start + Duration::from_secs_f64(n as f64 / rate);
        *free = Some(done);
        done
    }
}

/// Moves bytes from `from` to `to`: each chunk arrives at `arrival(len)` (computed when it
/// is read), then, with a `bucket`, queues there behind whatever arrived earlier on any link.
/// Two tasks, so that chunks overlap in flight as on a wire.
fn pipe<R, W, F>(mut from: R, mut to: W, mut arrival: F, bucket: Option<Arc<Bucket>>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    F: FnMut(usize) -> Instant + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = arrival(n);
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((mut at, bytes)) = rx.recv().await {
            for stage in [None, bucket.as_ref()] {
                if let Some(b) = stage {
                    at = b.reserve(bytes.len(), at.max(Instant::now()));
                }
                // A wake-up costs the clock thread and the runtime ~0.1 ms: not worth it for
                // less (pacing a small write at a fast link).
                if at > Instant::now() + WAKE_COST {
                    sleep_until(at).await;
                }
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
}

/// The process's precise clock: one thread that wakes futures at their deadlines.
struct Clock {
    /// Pending deadlines, earliest first. Held only to push or pop (no `.await` under it).
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    cv: Condvar,
    /// See [`Clock::lead`].
    lead_ns: std::sync::atomic::AtomicU64,
}

struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<&'static Clock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let c: &'static Clock = Box::leak(Box::new(Clock {
            heap: Mutex::new(BinaryHeap::new()),
            cv: Condvar::new(),
            lead_ns: Default::default(),
        }));
        std::thread::Builder::new()
            .name("link-clock".into())
            .spawn(move || c.run())
            .expect("spawning the link clock thread");
        c
    })
}

impl Clock {
    /// How early deadlines fire: what the hand-over to the runtime costs (adapted by
    /// [`sleep_until`]).
    fn lead(&self) -> Duration {
        Duration::from_nanos(self.lead_ns.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn run(&self) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            let horizon = now + self.lead();
            let mut due = Vec::new();
            while heap.peek().is_some_and(|Reverse(e)| e.at <= horizon) {
                if let Some(Reverse(e)) = heap.pop() {
                    due.push(e.waker);
                }
            }
            if !due.is_empty() {
                drop(heap);
                due.into_iter().for_each(Waker::wake);
                heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            heap = match heap.peek().map(|Reverse(e)| e.at) {
                None => self.cv.wait(heap).unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    self.cv
                        .wait_timeout(heap, at.saturating_duration_since(horizon))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    fn register(&self, at: Instant, waker: Waker) {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = heap.peek().is_none_or(|Reverse(e)| at < e.at);
        heap.push(Reverse(Entry { at, seq, waker }));
        drop(heap);
        if earliest {
            self.cv.notify_one();
        }
    }

    /// Feedback from a sleep that just ended `late` (negative: early): moves the lead an
    /// eighth of the way, so that on average sleeps end on time.
    fn adapt(&self, late_ns: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let lead = self.lead_ns.load(Relaxed) as i64;
        let next = (lead + late_ns / 8).clamp(0, MAX_LEAD.as_nanos() as i64);
        self.lead_ns.store(next as u64, Relaxed);
    }
}

/// Resolves at `at`, timed by the clock thread (on average on time: the clock fires early by
/// what handing a wake-up to the runtime has recently cost, at most [`MAX_LEAD`]).
fn sleep_until(at: Instant) -> impl Future<Output = ()> {
    struct Sleep(Instant);
    impl Future for Sleep {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let c = clock();
            let now = Instant::now();
            if now + c.lead() >= self.0 {
                let late = if now >= self.0 {
                    (now - self.0).as_nanos() as i64
                } else {
                    -((self.0 - now).as_nanos() as i64)
                };
                c.adapt(late);
                return Poll::Ready(());
            }
            c.register(self.0, cx.waker().clone());
            Poll::Pending
        }
    }
    Sleep(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_serialises_at_its_rate() {
        let b = Bucket::new(Some(1e6));
        let t0 = Instant::now();
        let a = b.reserve(500_000, t0);
        let c = b.reserve(500_000, t0);
        assert_eq!(a - t0, Duration::from_millis(500));
        assert_eq!(c - t0, Duration::from_millis(1000));
        let unlimited = Bucket::new(None);
        assert_eq!(unlimited.reserve(1 << 30, t0), t0);
    }

    #[test]
    fn line_keeps_order_under_jitter() {
        let mut l = Line::new(Duration::from_millis(10), Duration::from_millis(5));
        let t0 = Instant::now();
        let mut last = t0;
        for i in 0..1000 {
            let at = l.release(t0 + Duration::from_micros(i * 10));
            assert!(at >= last);
            let d = at - (t0 + Duration::from_micros(i * 10));
            assert!(d <= Duration::from_millis(15), "{d:?}");
            last = at;
        }
    }

    #[tokio::test]
    async fn a_shaped_connection_delays_each_direction_once() {
        use futures::{AsyncReadExt as _, AsyncWriteExt as _};
        let wan = LinkProfile::load("wan").unwrap();
        let (a, b) = (1usize, 4usize); // europe → na_east: 70 ms each way
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dialed: Multiaddr = format!("/ip4/{}/tcp/{port}", LinkProfile::loopback_ip(b, 0))
            .parse()
            .unwrap();
        let me: Multiaddr = format!("/ip4/{}/tcp/1", LinkProfile::loopback_ip(a, 0))
            .parse()
            .unwrap();
        let shaper = Shaper::new(LinkShape::new(wan, &[me], Some("supernode")).unwrap());
        let echo = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let endpoint = ConnectedPoint::Dialer {
            address: dialed,
            role_override: libp2p::core::Endpoint::Dialer,
            port_use: libp2p::core::transport::PortUse::New,
        };
        let Either::Right(mut s) = shaper.wrap(libp2p::tcp::tokio::TcpStream(tcp), &endpoint)
        else {
            panic!("a wan link must be shaped");
        };
        let t0 = Instant::now();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        let rtt = t0.elapsed();
        assert_eq!(&buf, b"ping");
        // 70 ms each way, applied once per direction (not 280 ms: the far end is not
        // shaped here, as a listener never delays).
        assert!(
            rtt >= Duration::from_millis(140) && rtt < Duration::from_millis(280),
            "{rtt:?}"
        );
        echo.await.unwrap();
    }
}
