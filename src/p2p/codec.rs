//! The request-response sync protocol `/meshnode/N/sync/1`: Status, BlocksByRange,
//! BlocksByHash, and BlockTxs (BIP152 `getblocktxn`/`blocktxn`).
//!
//! Frames: a 4-byte little-endian length, then the canonical bincode of the message.
//! Requests are at most [`MAX_REQUEST_BYTES`]; responses at most [`MAX_RESPONSE_BYTES`].

use crate::types::{encoding, Hash, SignedTx};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

/// Most blocks served per BlocksByRange request.
pub const MAX_BLOCKS_PER_REQUEST: u64 = 64;
/// Largest response frame, bytes.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Largest request frame, bytes (a flooded block: [`SyncRequest::NewBlock`]).
pub const MAX_REQUEST_BYTES: usize = encoding::MAX_BLOCK_BYTES + 64 * 1024;
/// Most hashes in one BlocksByHash request.
pub const MAX_BLOCKS_BY_HASH: usize = 16;

/// The protocol name for chain `chain_id`.
pub fn protocol(chain_id: u64) -> StreamProtocol {
    StreamProtocol::try_from_owned(format!("/meshnode/{chain_id}/sync/1")).expect("starts with /")
}

/// A peer's view of its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Status {
    /// Genesis block hash.
    pub genesis: Hash,
    /// Head height.
    pub head_height: u64,
    /// Head hash.
    pub head_hash: Hash,
}

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum SyncRequest {
    /// Ask for the peer's [`Status`].
    Status,
    /// Canonical blocks at heights `start .. start + count` (count capped by the server).
    BlocksByRange {
        /// First height.
        start: u64,
        /// How many.
        count: u64,
    },
    /// Blocks by hash, canonical or not, imported or only relayed (at most
    /// [`MAX_BLOCKS_BY_HASH`]): the full-block fallback of compact relay.
    BlocksByHash(Vec<Hash>),
    /// Some transactions of a block, by position (BIP152 `getblocktxn`).
    BlockTxs {
        /// The block.
        block: Hash,
        /// Positions, strictly increasing.
        indexes: Vec<u32>,
    },
    /// A new block pushed to us (`--relay flood`): the encoded block and how many more hops
    /// it may travel. Answered with [`SyncResponse::Ack`] at once.
    NewBlock {
        /// Hops left after this one.
        ttl: u8,
        /// The encoded block.
        block: Vec<u8>,
    },
    /// The hashes of the peer's pending transactions (eth/68 `NewPooledTransactionHashes`,
    /// asked for on connect), at most [`MAX_POOLED_HASHES`]. Answered with
    /// [`SyncResponse::Hashes`].
    PooledHashes,
    /// Pending transactions by hash (eth/68 `GetPooledTransactions`), at most
    /// [`MAX_POOLED_TXS`]. Answered with [`SyncResponse::Txs`]: the ones the server holds as
    /// pending, in request order.
    PooledTxs(Vec<Hash>),
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum SyncResponse {
    /// Answer to [`SyncRequest::Status`].
    Status(Status),
    /// Answer to [`SyncRequest::BlocksByRange`]: encoded blocks in height order (possibly
    /// fewer than asked; each is decoded and validated by the requester). Answer to
    /// [`SyncRequest::BlocksByHash`]: the blocks the server has, in request order.
    Blocks(Vec<Vec<u8>>),
    /// Answer to [`SyncRequest::BlockTxs`] (BIP152 `blocktxn`): the transactions at the
    /// requested positions, in order; empty when the server lacks the block or a position is
    /// out of range.
    Txs(Vec<SignedTx>),
    /// Answer to [`SyncRequest::NewBlock`]: received (whether new or not).
    Ack,
    /// Answer to [`SyncRequest::PooledHashes`].
    Hashes(Vec<Hash>),
}

/// Most hashes in a [`SyncResponse::Hashes`] (512 KiB of hashes).
pub const MAX_POOLED_HASHES: usize = 16_384;
/// Most transactions asked for in one [`SyncRequest::PooledTxs`] (eth/68 peers ask for
/// 256 at a time).
pub const MAX_POOLED_TXS: usize = 256;

/// Codec for [`SyncRequest`] / [`SyncResponse`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over limit {limit}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, data: &[u8]) -> io::Result<()> {
    io.write_all(&(data.len() as u32).to_le_bytes()).await?;
    io.write_all(data).await?;
    io.close().await
}

fn decode<V: bincode::Decode<()>>(b: &[u8], limit: usize) -> io::Result<V> {
    encoding::decode(b, limit)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(&read_frame(io, MAX_REQUEST_BYTES).await?, MAX_REQUEST_BYTES)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        decode(
            &read_frame(io, MAX_RESPONSE_BYTES).await?,
            MAX_RESPONSE_BYTES,
        )
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encoding::encode(&req)).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encoding::encode(&res)).await
    }
}
