"""Reads a live meshnode through web3.py (a published Ethereum client library).

Usage: web3_check.py RPC_URL TX_HASH SENDER_ADDRESS RECIPIENT_ADDRESS AMOUNT CHAIN_ID

Checks chain id, block number, the latest block with and without full transactions, a mined
transaction and its receipt, a dev account's balance and nonce (latest and pending), and the
peer count. Any parse error or wrong value raises, so the process exits non-zero.
"""
import sys

import web3
from web3 import Web3


def main() -> None:
    url, tx_hash, sender, recipient, amount, chain_id = sys.argv[1:7]
    amount, chain_id = int(amount), int(chain_id)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    assert w3.is_connected(), "not connected"

    assert w3.eth.chain_id == chain_id, w3.eth.chain_id
    number = w3.eth.block_number
    assert number >= 1, number

    latest = w3.eth.get_block("latest")
    assert latest["number"] >= number
    assert latest["parentHash"] == w3.eth.get_block(latest["number"] - 1)["hash"]
    earliest = w3.eth.get_block("earliest")
    assert earliest["number"] == 0

    tx = w3.eth.get_transaction(tx_hash)
    assert tx["hash"] == Web3.to_bytes(hexstr=tx_hash), tx["hash"]
    assert tx["from"] == Web3.to_checksum_address(sender), tx["from"]
    assert tx["to"] == Web3.to_checksum_address(recipient), tx["to"]
    assert tx["value"] == amount, tx["value"]
    assert tx["blockNumber"] is not None

    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1, receipt["status"]
    assert receipt["blockNumber"] == tx["blockNumber"]
    assert receipt["blockHash"] == tx["blockHash"]
    assert receipt["transactionIndex"] == tx["transactionIndex"]
    assert receipt["from"] == tx["from"] and receipt["to"] == tx["to"]

    block = w3.eth.get_block(tx["blockNumber"])
    assert tx["hash"] in block["transactions"], "hash list"
    full = w3.eth.get_block(tx["blockNumber"], full_transactions=True)
    assert any(t["hash"] == tx["hash"] and t["value"] == amount for t in full["transactions"])
    assert full["hash"] == w3.eth.get_block(block["hash"])["hash"]

    balance = w3.eth.get_balance(Web3.to_checksum_address(recipient))
    assert balance >= amount, balance
    nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(sender))
    pending = w3.eth.get_transaction_count(Web3.to_checksum_address(sender), "pending")
    assert nonce >= 1 and pending >= nonce, (nonce, pending)

    peers = w3.net.peer_count
    assert peers >= 1, peers

    print(
        f"web3.py {web3.__version__} ok: chain {w3.eth.chain_id}, "
        f"block {number}, tx in block {tx['blockNumber']} index {tx['transactionIndex']}, "
        f"receipt status {receipt['status']}, balance {balance}, nonce {nonce}/{pending}, peers {peers}"
    )


if __name__ == "__main__":
    main()
