# pragma version ~=0.4.3
"""
@title Tunnelled Bitcoin (hBTC)
@notice The bss tunnel's token: a standard ERC-20 where 1 unit is 1 satoshi held in the
        federation's Bitcoin vault. It is predeployed at a fixed address in genesis.
        Mints come only from the chain itself: when a Bitcoin deposit to the vault has enough
        confirmations in a block's Bitcoin view, that block calls `mint` from the system address
        (no transaction, no operator step). `withdraw` burns tokens and asks the operators to pay
        the BTC out to a standard Bitcoin output script.
"""

from ethereum.ercs import IERC20

implements: IERC20

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event WithdrawalRequested:
    id: indexed(uint64)
    sender: indexed(address)
    btcScriptPubKey: Bytes[34]
    sats: uint64

# The caller of system calls (revm's SYSTEM_ADDRESS): no key exists for it, so only the chain
# itself can mint.
SYSTEM: constant(address) = 0xffffFFFfFFffffffffffffffFfFFFfffFFFfFFfE

name: public(constant(String[17])) = "Tunnelled Bitcoin"
symbol: public(constant(String[4])) = "hBTC"
decimals: public(constant(uint8)) = 8

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)

# Smallest withdrawal, in satoshis (`tunnel.min_withdrawal_sats`, set in genesis).
minWithdrawalSats: public(uint64)
# Withdrawals requested so far; the next one gets this id.
withdrawalCount: public(uint64)
# Bitcoin deposit txids already minted: a deposit mints once, whatever a block says.
minted: public(HashMap[bytes32, bool])


@deploy
def __init__(min_withdrawal_sats: uint64):
    self.minWithdrawalSats = min_withdrawal_sats


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to the zero address"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, sats: uint256, deposit: bytes32):
    """
    @notice Mints `sats` to `receiver` for the Bitcoin deposit `deposit` (its txid). Only the
            chain's system calls reach this.
    """
    assert msg.sender == SYSTEM, "only the chain mints"
    assert not self.minted[deposit], "deposit already minted"
    self.minted[deposit] = True
    self.totalSupply += sats
    self.balanceOf[receiver] += sats
    log Transfer(sender=empty(address), receiver=receiver, value=sats)


@internal
@pure
def _standard(s: Bytes[34]) -> bool:
    n: uint256 = len(s)
    if n == 25:
        # P2PKH: OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG
        return slice(s, 0, 3) == b"\x76\xa9\x14" and slice(s, 23, 2) == b"\x88\xac"
    if n == 23:
        # P2SH: OP_HASH160 <20> OP_EQUAL
        return slice(s, 0, 2) == b"\xa9\x14" and slice(s, 22, 1) == b"\x87"
    if n == 22:
        # P2WPKH: OP_0 <20>
        return slice(s, 0, 2) == b"\x00\x14"
    if n == 34:
        # P2WSH: OP_0 <32>; P2TR: OP_1 <32>
        return slice(s, 0, 2) == b"\x00\x20" or slice(s, 0, 2) == b"\x51\x20"
    return False


@external
def withdraw(btcScriptPubKey: Bytes[34], sats: uint64):
    """
    @notice Burns `sats` hBTC and asks the operators to pay them (less the withdrawal fee) to
            `btcScriptPubKey`, a P2PKH, P2SH, P2WPKH, P2WSH or P2TR output script.
    """
    assert self._standard(btcScriptPubKey), "not a standard Bitcoin output script"
    assert sats >= self.minWithdrawalSats, "below the minimum withdrawal"
    amount: uint256 = convert(sats, uint256)
    self.balanceOf[msg.sender] -= amount
    self.totalSupply -= amount
    id: uint64 = self.withdrawalCount
    self.withdrawalCount = id + 1
    log Transfer(sender=msg.sender, receiver=empty(address), value=amount)
    log WithdrawalRequested(id=id, sender=msg.sender, btcScriptPubKey=btcScriptPubKey, sats=sats)
