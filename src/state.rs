//! Account state (balance, nonce) and the state transition of a block.

use crate::types::{Address, Block, SignedTx};
use std::collections::HashMap;

/// An account at some block: balance in base units and the next nonce it must use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Account {
    /// Balance, base units.
    pub balance: u64,
    /// Next nonce: the number of transactions the account has sent.
    pub nonce: u64,
}

/// Read access to account state at some block.
pub trait StateView {
    /// The account at `addr` (default if absent).
    fn account(&self, addr: &Address) -> Account;
}

/// Why a transaction cannot be applied to a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The nonce is below the account's next nonce (already used).
    #[error("nonce too low: account nonce {expected}, transaction nonce {got}")]
    NonceTooLow {
        /// Account's next nonce.
        expected: u64,
        /// Transaction's nonce.
        got: u64,
    },
    /// The nonce is above the account's next nonce (a gap).
    #[error("nonce too high: account nonce {expected}, transaction nonce {got}")]
    NonceTooHigh {
        /// Account's next nonce.
        expected: u64,
        /// Transaction's nonce.
        got: u64,
    },
    /// balance < amount + fee.
    #[error("insufficient funds: balance {balance}, cost {cost}")]
    InsufficientFunds {
        /// Sender balance.
        balance: u64,
        /// amount + fee.
        cost: u64,
    },
    /// A balance would overflow u64.
    #[error("balance overflow")]
    Overflow,
}

/// The accounts a block changed, on top of a [`StateView`] (the parent's state).
#[derive(Debug, Default, Clone)]
pub struct StateDiff {
    /// New values of every touched account.
    pub changed: HashMap<Address, Account>,
}

impl StateDiff {
    /// The account after this diff over `base`.
    pub fn get(&self, base: &dyn StateView, addr: &Address) -> Account {
        self.changed
            .get(addr)
            .copied()
            .unwrap_or_else(|| base.account(addr))
    }

    /// Applies one transaction; on error nothing is changed. Fees go to `fee_recipient`.
    pub fn apply_tx(
        &mut self,
        base: &dyn StateView,
        tx: &SignedTx,
        fee_recipient: &Address,
    ) -> Result<(), ApplyError> {
        let from = tx.sender();
        let mut sender = self.get(base, &from);
        if tx.body.nonce < sender.nonce {
            return Err(ApplyError::NonceTooLow {
                expected: sender.nonce,
                got: tx.body.nonce,
            });
        }
        if tx.body.nonce > sender.nonce {
            return Err(ApplyError::NonceTooHigh {
                expected: sender.nonce,
                got: tx.body.nonce,
            });
        }
        let cost = tx.cost().ok_or(ApplyError::Overflow)?;
        if sender.balance < cost {
            return Err(ApplyError::InsufficientFunds {
                balance: sender.balance,
                cost,
            });
        }
        sender.balance -= cost;
        sender.nonce += 1;
        self.changed.insert(from, sender);
        // Credit after debit so self-transfers and self-fees see the debited balance.
        self.credit(base, &tx.body.to, tx.body.amount)?;
        self.credit(base, fee_recipient, tx.body.fee)?;
        Ok(())
    }

    fn credit(&mut self, base: &dyn StateView, addr: &Address, v: u64) -> Result<(), ApplyError> {
        if v == 0 {
            return Ok(());
        }
        let mut a = self.get(base, addr);
        a.balance = a.balance.checked_add(v).ok_or(ApplyError::Overflow)?;
        self.changed.insert(*addr, a);
        Ok(())
    }
}

/// Applies every transaction of `block` to `base`; the first failure is returned with its index.
pub fn apply_block(base: &dyn StateView, block: &Block) -> Result<StateDiff, (usize, ApplyError)> {
    let mut diff = StateDiff::default();
    let fee_recipient = block.header.producer.address();
    for (i, tx) in block.txs.iter().enumerate() {
        diff.apply_tx(base, tx, &fee_recipient)
            .map_err(|e| (i, e))?;
    }
    Ok(diff)
}

impl StateView for HashMap<Address, Account> {
    fn account(&self, addr: &Address) -> Account {
        self.get(addr).copied().unwrap_or_default()
    }
}

/// Account changes layered over a base state: what a reorg sees while it undoes blocks and
/// applies a branch before anything is written.
pub struct Overlay<'a> {
    /// Changed accounts (their values in the overlay's state).
    pub changed: &'a HashMap<Address, Account>,
    /// Everything else.
    pub base: &'a dyn StateView,
}

impl StateView for Overlay<'_> {
    fn account(&self, addr: &Address) -> Account {
        self.changed
            .get(addr)
            .copied()
            .unwrap_or_else(|| self.base.account(addr))
    }
}
