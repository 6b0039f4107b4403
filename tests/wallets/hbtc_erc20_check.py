"""Uses hBTC with web3.py and the stock ERC-20 ABI (nothing bss-specific), as a wallet would.

    python3 tests/wallets/hbtc_erc20_check.py http://127.0.0.1:8545 0x<holder secret key>

The holder must own at least 10,000 hBTC units (a minted deposit). Exits non-zero on the first
incompatibility.
"""
import sys

from eth_account import Account
from web3 import Web3

URL, HOLDER_KEY = sys.argv[1], sys.argv[2]
HBTC = Web3.to_checksum_address("0x4254430000000000000000000000000000000000")
# The ERC-20 ABI as EIP-20 states it (what ethers, cast and wallets ship), events included.
ERC20 = [
    {"type": "function", "name": "name", "stateMutability": "view", "inputs": [], "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "symbol", "stateMutability": "view", "inputs": [], "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [], "outputs": [{"name": "", "type": "uint8"}]},
    {"type": "function", "name": "totalSupply", "stateMutability": "view", "inputs": [], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view", "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "allowance", "stateMutability": "view", "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "transfer", "stateMutability": "nonpayable", "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}], "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "approve", "stateMutability": "nonpayable", "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}], "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "transferFrom", "stateMutability": "nonpayable", "inputs": [{"name": "from", "type": "address"}, {"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}], "outputs": [{"name": "", "type": "bool"}]},
    {"type": "event", "name": "Transfer", "anonymous": False, "inputs": [{"name": "from", "type": "address", "indexed": True}, {"name": "to", "type": "address", "indexed": True}, {"name": "value", "type": "uint256", "indexed": False}]},
    {"type": "event", "name": "Approval", "anonymous": False, "inputs": [{"name": "owner", "type": "address", "indexed": True}, {"name": "spender", "type": "address", "indexed": True}, {"name": "value", "type": "uint256", "indexed": False}]},
]

w3 = Web3(Web3.HTTPProvider(URL))
token = w3.eth.contract(address=HBTC, abi=ERC20)
holder = Account.from_key(HOLDER_KEY)
spender = Account.create()
receiver = Account.create()
chain_id = w3.eth.chain_id

assert token.functions.name().call() == "Tunnelled Bitcoin"
assert token.functions.symbol().call() == "hBTC"
assert token.functions.decimals().call() == 8
supply = token.functions.totalSupply().call()
start = token.functions.balanceOf(holder.address).call()
assert start >= 10_000 and supply >= start, (start, supply)


def send(acct, call, nonce):
    tx = call.build_transaction({
        "from": acct.address, "nonce": nonce, "chainId": chain_id, "gas": 200_000,
        "maxFeePerGas": w3.eth.gas_price * 2, "maxPriorityFeePerGas": w3.eth.max_priority_fee,
    })
    h = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    r = w3.eth.wait_for_transaction_receipt(h, timeout=30)
    assert r.status == 1, r
    return r


nonce = w3.eth.get_transaction_count(holder.address, "pending")
r = send(holder, token.functions.transfer(receiver.address, 1_234), nonce)
(ev,) = token.events.Transfer().process_receipt(r)
assert (ev.args["from"], ev.args["to"], ev.args["value"]) == (holder.address, receiver.address, 1_234), ev
r = send(holder, token.functions.approve(spender.address, 5_000), nonce + 1)
(ev,) = token.events.Approval().process_receipt(r)
assert (ev.args["owner"], ev.args["spender"], ev.args["value"]) == (holder.address, spender.address, 5_000), ev
assert token.functions.allowance(holder.address, spender.address).call() == 5_000

# The spender needs gas: the holder sends it some ETH.
fund = {"to": spender.address, "value": 10**17, "nonce": nonce + 2, "chainId": chain_id, "gas": 21_000,
        "maxFeePerGas": w3.eth.gas_price * 2, "maxPriorityFeePerGas": w3.eth.max_priority_fee}
w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(holder.sign_transaction(fund).raw_transaction), timeout=30)
r = send(spender, token.functions.transferFrom(holder.address, receiver.address, 4_000), 0)
(ev,) = token.events.Transfer().process_receipt(r)
assert ev.args["value"] == 4_000, ev
assert token.functions.allowance(holder.address, spender.address).call() == 1_000
assert token.functions.balanceOf(receiver.address).call() == 5_234
assert token.functions.balanceOf(holder.address).call() == start - 5_234
assert token.functions.totalSupply().call() == supply
# Logs by filter, as an indexer reads them.
logs = token.events.Transfer().get_logs(from_block=r.blockNumber, to_block=r.blockNumber)
assert any(l.args["to"] == receiver.address and l.args["value"] == 4_000 for l in logs), logs
print("hBTC with web3.py and the stock ERC-20 ABI: all checks passed")
