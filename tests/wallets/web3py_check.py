"""Drives a running bss node with web3.py, unchanged, as a wallet developer would.

    pip install web3
    python3 tests/wallets/web3py_check.py http://127.0.0.1:8545

Exits non-zero on the first incompatibility.
"""
import sys

from eth_account import Account
from web3 import Web3

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8545"
DEV0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
# Runtime: empty calldata returns slot 0; otherwise stores the word and emits LOG1(topic 0xab..ab).
RUNTIME = bytes.fromhex(
    "36600f57600054600052602060" "00f35b6000358015604657806000556000527f" + "ab" * 32 + "60206000a1005b60006000fd"
)
INIT = bytes([0x60, len(RUNTIME), 0x80, 0x60, 0x0B, 0x60, 0x00, 0x39, 0x60, 0x00, 0xF3]) + RUNTIME

w3 = Web3(Web3.HTTPProvider(URL))
assert w3.is_connected(), "not connected"
acct = Account.from_key(DEV0)
chain_id = w3.eth.chain_id
print("chain id", chain_id, "block", w3.eth.block_number, "client", w3.client_version)
print("balance", w3.from_wei(w3.eth.get_balance(acct.address), "ether"), "ETH")
latest = w3.eth.get_block("latest", full_transactions=True)
print("latest block", latest.number, latest.hash.hex(), "base fee", latest.baseFeePerGas)
print("gas price", w3.eth.gas_price, "tip", w3.eth.max_priority_fee)
print("fee history", dict(w3.eth.fee_history(4, "latest", [25, 75])))

nonce = w3.eth.get_transaction_count(acct.address, "pending")
deploy = {
    "chainId": chain_id, "nonce": nonce, "data": INIT, "gas": 200_000,
    "maxFeePerGas": w3.eth.gas_price * 2, "maxPriorityFeePerGas": w3.eth.max_priority_fee,
}
h = w3.eth.send_raw_transaction(acct.sign_transaction(deploy).raw_transaction)
r = w3.eth.wait_for_transaction_receipt(h, timeout=30)
assert r.status == 1 and r.contractAddress, r
contract = r.contractAddress
assert w3.eth.get_code(contract) == RUNTIME
print("deployed", contract, "gas used", r.gasUsed)

legacy = {"chainId": chain_id, "nonce": nonce + 1, "to": contract, "data": (7).to_bytes(32, "big"),
          "gas": 100_000, "gasPrice": w3.eth.gas_price}
r2 = w3.eth.wait_for_transaction_receipt(
    w3.eth.send_raw_transaction(acct.sign_transaction(legacy).raw_transaction), timeout=30)
assert r2.status == 1 and len(r2.logs) == 1, r2
assert int.from_bytes(w3.eth.call({"to": contract}), "big") == 7
assert int.from_bytes(w3.eth.get_storage_at(contract, 0), "big") == 7
logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": contract})
assert len(logs) == 1 and logs[0]["topics"][0] == bytes([0xAB] * 32), logs
print("call, storage and logs ok")

# web3.py's own transaction building (estimate gas, fill fees) through the node.
tx = {"from": acct.address, "to": "0x000000000000000000000000000000000000dEaD", "value": 12345,
      "nonce": nonce + 2, "chainId": chain_id}
tx["gas"] = w3.eth.estimate_gas(tx)
tx["maxFeePerGas"] = w3.eth.gas_price * 2
tx["maxPriorityFeePerGas"] = w3.eth.max_priority_fee
r3 = w3.eth.wait_for_transaction_receipt(
    w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction), timeout=30)
assert r3.status == 1 and w3.eth.get_balance("0x000000000000000000000000000000000000dEaD") >= 12345
got = w3.eth.get_transaction(r3.transactionHash)
assert got["from"] == acct.address and got["value"] == 12345, got
block = w3.eth.get_block(r3.blockNumber, full_transactions=True)
assert any(t["hash"] == r3.transactionHash for t in block.transactions)

try:
    w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    raise SystemExit("duplicate tx was accepted")
except Exception as e:  # web3 raises a ValueError-like RPC error
    assert "already known" in str(e) or "nonce too low" in str(e), e
try:
    w3.eth.call({"to": contract, "data": (0).to_bytes(32, "big")})
    raise SystemExit("revert not reported")
except Exception as e:
    assert "revert" in str(e).lower(), e
print("web3.py over HTTP: all checks passed")

# WebSocket on the same port: eth_subscribe("newHeads") delivers committed heads in order.
import asyncio
import json

import websockets


async def heads():
    async with websockets.connect(URL.replace("http://", "ws://")) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}))
        sub = json.loads(await asyncio.wait_for(ws.recv(), 10))["result"]
        numbers = []
        while len(numbers) < 3:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert msg["params"]["subscription"] == sub, msg
            numbers.append(int(msg["params"]["result"]["number"], 16))
        assert numbers == sorted(numbers) and len(set(numbers)) == 3, numbers
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe", "params": ["bogus"]}))
        err = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err.get("error", {}).get("code") == -32602, err
        print("websocket newHeads ok:", numbers)


asyncio.run(heads())
print("web3.py and websocket: all checks passed")
