//! Property tests of the canonical encoding and signatures: encode/decode round trips, and
//! flipping any byte of a signed transaction or block makes it fail decoding or verification.

use meshnode::crypto::{self, Keypair};
use meshnode::genesis::{ChainSpec, DevAccounts, GenesisFile};
use meshnode::state::{Account, StateView};
use meshnode::types::{encoding, Address, Block, BlockHeader, Hash, SignedTx, TxBody};
use meshnode::validation::{self, BlockContext};
use proptest::prelude::*;
use std::collections::HashMap;

const CHAIN: u64 = 9;

fn spec() -> ChainSpec {
    GenesisFile {
        chain_id: CHAIN,
        genesis_time_ms: 1_000_000,
        slot_ms: 1000,
        validators: vec![hex::encode(Keypair::dev_validator(0).public().0)],
        alloc: Default::default(),
        dev_accounts: Some(DevAccounts {
            count: 8,
            balance: 1 << 40,
        }),
        bootnodes: vec![],
    }
    .to_spec()
    .unwrap()
}

fn tx_strategy() -> impl Strategy<Value = SignedTx> {
    (
        0u64..8,
        0u64..3,
        any::<[u8; 20]>(),
        0u64..1_000_000,
        0u64..1000,
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(k, nonce, to, amount, fee, data)| {
            let key = Keypair::dev_account(k);
            key.sign_tx(TxBody {
                chain_id: CHAIN,
                nonce,
                from: key.public(),
                to: Address(to),
                amount,
                fee,
                data,
            })
        })
}

/// A valid block at height 1 on top of genesis with one tx per distinct sender (nonce 0).
fn block_strategy() -> impl Strategy<Value = Block> {
    prop::collection::vec((1u64..1000, 1u64..100), 0..5).prop_map(|amounts| {
        let txs: Vec<SignedTx> = amounts
            .iter()
            .enumerate()
            .map(|(i, (amount, fee))| {
                let k = Keypair::dev_account(i as u64);
                k.sign_tx(TxBody {
                    chain_id: CHAIN,
                    nonce: 0,
                    from: k.public(),
                    to: Keypair::dev_account(7).address(),
                    amount: *amount,
                    fee: *fee,
                    data: vec![],
                })
            })
            .collect();
        build_block(txs)
    })
}

/// A block at height 1 (slot 3) on top of genesis carrying `txs`, signed by its producer.
fn build_block(txs: Vec<SignedTx>) -> Block {
    let s = spec();
    let hashes: Vec<Hash> = txs.iter().map(SignedTx::hash).collect();
    let producer = Keypair::dev_validator(0);
    let mut b = Block {
        header: BlockHeader {
            chain_id: CHAIN,
            height: 1,
            slot: 3,
            parent: s.genesis_block().hash(),
            timestamp_ms: s.slot_start_ms(3) + 10,
            producer: producer.public(),
            tx_root: meshnode::types::merkle_root(&hashes),
            tx_count: txs.len() as u32,
        },
        signature: meshnode::types::Signature([0; 64]),
        txs,
    };
    producer.sign_block(&mut b);
    b
}

fn genesis_state(s: &ChainSpec) -> HashMap<Address, Account> {
    s.alloc
        .iter()
        .map(|(a, b)| {
            (
                *a,
                Account {
                    balance: *b,
                    nonce: 0,
                },
            )
        })
        .collect()
}

fn block_is_valid(b: Block) -> bool {
    block_check(b, &|_| false).is_ok()
}

fn block_check(
    b: Block,
    already_verified: &dyn Fn(&Hash) -> bool,
) -> Result<(), validation::ValidationError> {
    let s = spec();
    let state = genesis_state(&s);
    let g = s.genesis_block();
    let ctx = BlockContext {
        spec: &s,
        parent: &g.header,
        now_ms: s.slot_start_ms(4),
        state: &state as &dyn StateView,
        already_verified,
    };
    validation::check_block(b, &ctx).map(|_| ())
}

/// Signatures verified once per node: a block transaction whose hash the mempool already
/// verified is not verified again — shown with a transaction whose signature is broken, which
/// passes only when its hash is named as verified (never the case for a real mempool, which
/// admits verified transactions only).
#[test]
fn block_txs_verified_in_the_mempool_are_not_verified_again() {
    let k = Keypair::dev_account(3);
    let mut tx = k.sign_tx(TxBody {
        chain_id: CHAIN,
        nonce: 0,
        from: k.public(),
        to: Keypair::dev_account(7).address(),
        amount: 5,
        fee: 1,
        data: vec![],
    });
    tx.signature.0[10] ^= 1;
    let h = tx.hash();
    let b = build_block(vec![tx]);
    assert!(matches!(
        block_check(b.clone(), &|_| false),
        Err(validation::ValidationError::InvalidBlockTx { index: 0, .. })
    ));
    assert_eq!(block_check(b, &|x| *x == h), Ok(()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn tx_round_trips(tx in tx_strategy()) {
        let bytes = tx.to_bytes();
        let back = validation::decode_tx(&bytes).unwrap();
        prop_assert_eq!(&back, &tx);
        prop_assert_eq!(back.to_bytes(), bytes);
        prop_assert!(crypto::verify_tx(&back).is_ok());
    }

    #[test]
    fn flipped_tx_byte_fails(tx in tx_strategy(), pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut bytes = tx.to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        match validation::decode_tx(&bytes) {
            Err(_) => {}
            Ok(t) => prop_assert!(validation::check_tx(t, CHAIN).is_err(), "flipped byte {} still verifies", i),
        }
    }

    #[test]
    fn block_round_trips_and_verifies(b in block_strategy()) {
        let bytes = b.to_bytes();
        let back = validation::decode_block(&bytes).unwrap();
        prop_assert_eq!(&back, &b);
        prop_assert!(block_is_valid(back));
    }

    #[test]
    fn flipped_block_byte_fails(b in block_strategy(), pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut bytes = b.to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        match validation::decode_block(&bytes) {
            Err(_) => {}
            Ok(blk) => prop_assert!(!block_is_valid(blk), "flipped byte {} of {} still valid", i, bytes.len()),
        }
    }

    /// Header fields from the whole u64 range, re-signed by the scheduled producer so that the
    /// checks after the signature run too: validation answers with an error, never a panic.
    #[test]
    fn extreme_header_fields_never_panic(
        b in block_strategy(),
        height in prop::option::of(any::<u64>()),
        slot in prop::option::of(prop_oneof![any::<u64>(), (u64::MAX - 10)..=u64::MAX]),
        timestamp_ms in prop::option::of(any::<u64>()),
        tx_count in prop::option::of(any::<u32>()),
        now_ms in prop_oneof![any::<u64>(), Just(4_000_000u64), Just(u64::MAX)],
    ) {
        // Each field keeps its valid value (None) or takes an extreme one, so that the checks
        // after the first failing one are reached too.
        let s = spec();
        let mut b = b;
        b.header.height = height.unwrap_or(b.header.height);
        b.header.slot = slot.unwrap_or(b.header.slot);
        b.header.timestamp_ms = timestamp_ms.unwrap_or(b.header.timestamp_ms);
        b.header.tx_count = tx_count.unwrap_or(b.header.tx_count);
        Keypair::dev_validator(0).sign_block(&mut b);
        let state = genesis_state(&s);
        let g = s.genesis_block();
        let ctx = BlockContext {
            spec: &s,
            parent: &g.header,
            now_ms,
            state: &state as &dyn StateView,
            already_verified: &|_| false,
        };
        let _ = validation::check_block(b, &ctx);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = validation::decode_tx(&bytes);
        let _ = validation::decode_block(&bytes);
    }
}

#[test]
fn trailing_bytes_and_oversize_are_refused() {
    let tx = Keypair::dev_account(0).sign_tx(TxBody {
        chain_id: CHAIN,
        nonce: 0,
        from: Keypair::dev_account(0).public(),
        to: Address::default(),
        amount: 1,
        fee: 1,
        data: vec![],
    });
    let mut bytes = tx.to_bytes();
    bytes.push(0);
    assert!(matches!(
        encoding::decode::<SignedTx>(&bytes, 4096),
        Err(encoding::DecodeError::Trailing(1))
    ));
    assert!(matches!(
        encoding::decode::<SignedTx>(&bytes, 10),
        Err(encoding::DecodeError::TooLarge { .. })
    ));
    // A vector length prefix far beyond the input fails cleanly.
    let mut forged = tx.to_bytes();
    let data_len_at = 8 + 8 + 32 + 20 + 8 + 8;
    forged[data_len_at..data_len_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(validation::decode_tx(&forged).is_err());
}
