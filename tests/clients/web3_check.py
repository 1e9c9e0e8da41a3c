"""Reads a live meshnode through web3.py (a published Ethereum client library).

Usage: web3_check.py RPC_URL TX_HASH SENDER_ADDRESS RECIPIENT_ADDRESS AMOUNT CHAIN_ID QUEUED_SENDER

Checks chain id, block number, the latest block with and without full transactions, a mined
transaction and its receipt, a dev account's balance and nonce (latest and pending), the
peer count, block transaction counts, geth's txpool and admin namespaces (QUEUED_SENDER has a
transaction behind a nonce gap), and, over WebSocket, eth_subscribe newHeads and
newPendingTransactions. Any parse error or wrong value raises, so the process exits non-zero.
"""
import asyncio
import sys

import web3
from web3 import Web3


def main() -> None:
    url, tx_hash, sender, recipient, amount, chain_id, queued_sender = sys.argv[1:8]
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

    assert w3.eth.get_block_transaction_count(tx["blockNumber"]) == len(block["transactions"])
    assert w3.eth.get_block_transaction_count(block["hash"]) == len(block["transactions"])
    assert w3.client_version.startswith("meshnode/v"), w3.client_version

    # geth's txpool namespace: the gapped transaction is queued, not pending.
    status = w3.geth.txpool.status()  # geth answers 0x quantities; web3.py leaves them as is
    assert int(status["queued"], 16) >= 1 and int(status["pending"], 16) >= 0, status
    content = w3.geth.txpool.content()
    queued = {k.lower(): v for k, v in content["queued"].items()}
    mine = queued[queued_sender.lower()]
    qtx = next(iter(mine.values()))
    # Unformatted by web3.py, as geth's: hex strings, blockNumber null.
    assert qtx["from"].lower() == queued_sender.lower() and qtx["blockNumber"] is None, qtx
    assert int(qtx["nonce"], 16) == 5, qtx
    inspect = w3.geth.txpool.inspect()
    line = next(iter({k.lower(): v for k, v in inspect["queued"].items()}[queued_sender.lower()].values()))
    assert " wei + 21000 gas × " in line, line

    node = w3.geth.admin.node_info()
    assert node["id"] and node["protocols"]["meshnode"]["network"] == chain_id, node
    admin_peers = w3.geth.admin.peers()
    assert len(admin_peers) == peers and all(p["network"]["remoteAddress"] for p in admin_peers)

    heads, pending_hash = asyncio.run(subscriptions(url.replace("http://", "ws://", 1)))

    print(
        f"web3.py {web3.__version__} ok: chain {w3.eth.chain_id}, "
        f"block {number}, tx in block {tx['blockNumber']} index {tx['transactionIndex']}, "
        f"receipt status {receipt['status']}, balance {balance}, nonce {nonce}/{pending}, peers {peers}; "
        f"newHeads {heads}, newPendingTransactions {pending_hash[:12]}…"
    )


async def subscriptions(ws_url: str):
    """eth_subscribe over WebSocket with web3.py's AsyncWeb3: two consecutive newHeads (parsed
    into web3's block type) and one newPendingTransactions hash (a tx this script submits)."""
    from web3 import AsyncWeb3, WebSocketProvider

    async with AsyncWeb3(WebSocketProvider(ws_url)) as w3:
        heads_id = await w3.eth.subscribe("newHeads")
        assert heads_id.startswith("0x"), heads_id
        numbers = []
        async for msg in w3.socket.process_subscriptions():
            head = msg["result"]
            assert head["parentHash"] and head["hash"] and head["logsBloom"] is not None
            numbers.append(head["number"])
            if len(numbers) == 2:
                break
        assert numbers[1] == numbers[0] + 1, numbers
        await w3.eth.unsubscribe(heads_id)
        return numbers, await pending_tx_pushed(w3)


async def pending_tx_pushed(w3) -> str:
    """Subscribes to newPendingTransactions, then waits for any pushed hash (the Rust test keeps
    submitting transactions while this runs)."""
    sub = await w3.eth.subscribe("newPendingTransactions")
    async for msg in w3.socket.process_subscriptions():
        h = msg["result"]
        h = h.hex() if hasattr(h, "hex") and not isinstance(h, str) else h
        assert len(h.removeprefix("0x")) == 64, h
        await w3.eth.unsubscribe(sub)
        return h


if __name__ == "__main__":
    main()
