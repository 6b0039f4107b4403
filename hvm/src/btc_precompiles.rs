//! The hVM's Bitcoin precompiles, at Hemi's addresses with Hemi's byte layouts (op-geth
//! `core/vm/contracts.go`): integers big-endian, txids and block hashes in display (byte-reversed)
//! order. Every answer is read from the Bitcoin view *as of the block's BTC tip*, so every replica
//! computes the same bytes. Invalid input, or data the view does not hold, returns empty output
//! with success — never a revert, never a panic.
//!
//! Gas, charged before running: 0x40 btcBalAddr 10,000 · 0x41 btcUtxosAddrList 25,000 · 0x42
//! btcTxByTxid 20,000 · 0x43 btcTxConfirmations 5,000 · 0x44 btcLastHeader 3,000 · 0x45
//! btcHeaderN 3,000 · 0x46 btcAddrToScript 3,000 · 0x47 btcInputByTxid 10,000 · 0x48
//! btcOutputByTxid 5,000 · 0x49 btcTxGetInputWitness 5,000 (layouts in `btc_precompiles_tx`); and 0x40 and 0x41 add
//! [`GAS_PER_SCANNED_OUTPUT`] for every output of the address they have to look at (known in
//! O(1) before scanning), so a dust-spammed address costs its caller, not the round: a scan too
//! big for the call's gas fails out of gas without running.

use alloy_primitives::{Address, Bytes};
use bitcoin::hashes::Hash;
use bitcoin::{Network, OutPoint, Txid};
use bss_btc::BtcIndex;
use revm::context::Cfg;
use revm::context_interface::ContextTr;
use revm::handler::{EthPrecompiles, PrecompileProvider};
use revm::interpreter::{CallInputs, Gas, InstructionResult, InterpreterResult};
use revm::primitives::AddressSet;
use std::str::FromStr;
use std::sync::Arc;

/// Hemi's minimum address length for the address-taking precompiles.
const MIN_ADDRESS_LEN: usize = 24;

pub const BTC_BAL_ADDR: u8 = 0x40;
pub const BTC_UTXOS_ADDR_LIST: u8 = 0x41;
pub const BTC_TX_BY_TXID: u8 = 0x42;
pub const BTC_TX_CONFIRMATIONS: u8 = 0x43;
pub const BTC_LAST_HEADER: u8 = 0x44;
pub const BTC_HEADER_N: u8 = 0x45;
pub const BTC_ADDR_TO_SCRIPT: u8 = 0x46;
pub const BTC_INPUT_BY_TXID: u8 = 0x47;
pub const BTC_OUTPUT_BY_TXID: u8 = 0x48;
pub const BTC_TX_GET_INPUT_WITNESS: u8 = 0x49;

/// Gas per output of the queried address that 0x40 and 0x41 scan (about a warm SLOAD).
pub const GAS_PER_SCANNED_OUTPUT: u64 = 100;

/// The gas of one call: the flat price, plus the scan for 0x40 and 0x41.
pub fn call_cost(id: u8, input: &[u8], v: Option<&BtcAt>) -> u64 {
    let scanned = match (id, v) {
        (BTC_BAL_ADDR, Some(v)) => script_of(input, v).map_or(0, |s| v.index.outputs_of(&s, v.height)),
        (BTC_UTXOS_ADDR_LIST, Some(v)) if input.len() >= MIN_ADDRESS_LEN + 4 => {
            script_of(&input[..input.len() - 4], v).map_or(0, |s| v.index.outputs_of(&s, v.height))
        }
        _ => 0,
    };
    gas_cost(id).saturating_add(GAS_PER_SCANNED_OUTPUT.saturating_mul(scanned as u64))
}

pub fn gas_cost(id: u8) -> u64 {
    match id {
        BTC_BAL_ADDR => 10_000,
        BTC_UTXOS_ADDR_LIST => 25_000,
        BTC_TX_BY_TXID => 20_000,
        BTC_TX_CONFIRMATIONS => 5_000,
        BTC_INPUT_BY_TXID => 10_000,
        BTC_OUTPUT_BY_TXID | BTC_TX_GET_INPUT_WITNESS => 5_000,
        _ => 3_000,
    }
}

/// The Bitcoin view a block executes against: the index and the block's BTC tip height.
#[derive(Clone)]
pub struct BtcAt {
    pub index: Arc<BtcIndex>,
    pub height: u64,
    pub network: Network,
}

/// The view as of `tip` (a block's BTC attributes), if the link's index holds that tip on its
/// best chain.
pub fn btc_at(link: &bss_btc::BtcLink, tip: &bss_consensus::BtcAttributes) -> Option<BtcAt> {
    let hash = bss_btc::attributes::tip_hash(tip)?;
    // On the best chain, or on the fork a Bitcoin reorg left a certified block's tip on.
    let index = link.view.current().as_of_tip(tip.tip_height, &hash)?;
    Some(BtcAt { index, height: tip.tip_height, network: link.rules.network })
}

fn hvm_id(a: &Address) -> Option<u8> {
    let b = a.as_slice();
    (b[..19].iter().all(|x| *x == 0) && (BTC_BAL_ADDR..=BTC_TX_GET_INPUT_WITNESS).contains(&b[19])).then_some(b[19])
}

/// Ethereum's precompiles plus the hVM's.
pub struct HvmPrecompiles {
    eth: EthPrecompiles,
    btc: Option<BtcAt>,
    addresses: AddressSet,
}

impl HvmPrecompiles {
    pub fn new(spec: revm::primitives::hardfork::SpecId, btc: Option<BtcAt>) -> Self {
        let eth = EthPrecompiles::new(spec);
        let addresses = Self::all_addresses(&eth);
        Self { eth, btc, addresses }
    }

    fn all_addresses(eth: &EthPrecompiles) -> AddressSet {
        let mut set = eth.warm_addresses().clone();
        for id in BTC_BAL_ADDR..=BTC_TX_GET_INPUT_WITNESS {
            set.insert(Address::with_last_byte(id));
        }
        set
    }
}

impl<CTX: ContextTr> PrecompileProvider<CTX> for HvmPrecompiles {
    type Output = InterpreterResult;

    fn set_spec(&mut self, spec: <CTX::Cfg as Cfg>::Spec) -> bool {
        let changed = <EthPrecompiles as PrecompileProvider<CTX>>::set_spec(&mut self.eth, spec);
        if changed {
            self.addresses = Self::all_addresses(&self.eth);
        }
        changed
    }

    fn run(&mut self, context: &mut CTX, inputs: &CallInputs) -> Result<Option<InterpreterResult>, String> {
        let Some(id) = hvm_id(&inputs.bytecode_address) else {
            return <EthPrecompiles as PrecompileProvider<CTX>>::run(&mut self.eth, context, inputs);
        };
        let input = inputs.input.as_bytes(context).to_vec();
        let mut gas = Gas::new(inputs.gas_limit);
        if !gas.record_regular_cost(call_cost(id, &input, self.btc.as_ref())) {
            gas.spend_all();
            metrics::counter!("bss_hvm_precompile_oog_total", "precompile" => format!("0x{id:02x}")).increment(1);
            return Ok(Some(InterpreterResult::new(InstructionResult::PrecompileOOG, Bytes::new(), gas)));
        }
        let output = self.btc.as_ref().map(|v| run_hvm(id, &input, v)).unwrap_or_default();
        metrics::counter!("bss_hvm_precompile_calls_total", "precompile" => format!("0x{id:02x}")).increment(1);
        Ok(Some(InterpreterResult::new(InstructionResult::Return, Bytes::from(output), gas)))
    }

    fn warm_addresses(&self) -> &AddressSet {
        &self.addresses
    }

    fn contains(&self, address: &Address) -> bool {
        self.addresses.contains(address)
    }
}

/// One precompile call; empty output for anything invalid or unknown.
pub fn run_hvm(id: u8, input: &[u8], v: &BtcAt) -> Vec<u8> {
    match id {
        BTC_BAL_ADDR => balance(input, v),
        BTC_UTXOS_ADDR_LIST => utxos(input, v),
        BTC_TX_BY_TXID => tx_by_txid(input, v),
        BTC_TX_CONFIRMATIONS => confirmations(input, v),
        BTC_LAST_HEADER => header(v.height, v),
        BTC_HEADER_N => match <[u8; 4]>::try_from(input) {
            Ok(b) if u64::from(u32::from_be_bytes(b)) <= v.height => header(u64::from(u32::from_be_bytes(b)), v),
            _ => vec![],
        },
        BTC_ADDR_TO_SCRIPT => script_of(input, v).map(|s| s.into_bytes()).unwrap_or_default(),
        BTC_INPUT_BY_TXID => super::btc_precompiles_tx::input_by_txid(input, v),
        BTC_OUTPUT_BY_TXID => super::btc_precompiles_tx::output_by_txid(input, v),
        BTC_TX_GET_INPUT_WITNESS => super::btc_precompiles_tx::input_witness(input, v),
        _ => vec![],
    }
}

fn script_of(input: &[u8], v: &BtcAt) -> Option<bitcoin::ScriptBuf> {
    if input.len() < MIN_ADDRESS_LEN {
        return None;
    }
    let s = std::str::from_utf8(input).ok()?;
    let a = bitcoin::Address::from_str(s).ok()?.require_network(v.network).ok()?;
    Some(a.script_pubkey())
}

/// Display order (as block explorers print txids) ↔ the internal byte order.
pub(crate) fn reversed(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(b);
    out.reverse();
    out
}

fn balance(input: &[u8], v: &BtcAt) -> Vec<u8> {
    let Some(script) = script_of(input, v) else { return vec![] };
    let total: u64 = v.index.utxos(&script, v.height).iter().map(|(_, value)| *value).sum();
    total.to_be_bytes().to_vec()
}

/// address ‖ u24 page ‖ u8 page size (0 → 10) → u8 n ‖ n × (txid ‖ u16 vout ‖ u64 value).
fn utxos(input: &[u8], v: &BtcAt) -> Vec<u8> {
    if input.len() < MIN_ADDRESS_LEN + 4 {
        return vec![];
    }
    let (addr, tail) = input.split_at(input.len() - 4);
    let Some(script) = script_of(addr, v) else { return vec![] };
    let page = (usize::from(tail[0]) << 16) | (usize::from(tail[1]) << 8) | usize::from(tail[2]);
    let size = if tail[3] == 0 { 10 } else { usize::from(tail[3]) };
    let list = v.index.utxos(&script, v.height);
    let chosen: Vec<_> = list.iter().skip(page * size).take(size).collect();
    let mut out = vec![chosen.len() as u8];
    for (o, value) in chosen {
        out.extend_from_slice(&reversed(&o.txid.to_byte_array()));
        out.extend_from_slice(&(o.vout as u16).to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
    out
}

pub(crate) fn txid_of(input: &[u8]) -> Option<Txid> {
    (input.len() >= 32).then(|| Txid::from_byte_array(reversed(&input[..32])))
}

fn confirmations(input: &[u8], v: &BtcAt) -> Vec<u8> {
    if input.len() != 32 {
        return vec![];
    }
    let conf = txid_of(input).and_then(|t| v.index.tx(&t, v.height)).map_or(0, |r| v.height - r.height + 1);
    (conf as u32).to_be_bytes().to_vec()
}

/// height u32 ‖ hash ‖ version u32 ‖ prev ‖ merkle ‖ time u32 ‖ bits u32 ‖ nonce u32 (116 bytes).
fn header(height: u64, v: &BtcAt) -> Vec<u8> {
    let (Some(h), Some(hash)) = (v.index.header_at(height), v.index.hash_at(height)) else { return vec![] };
    let mut out = Vec::with_capacity(116);
    out.extend_from_slice(&(height as u32).to_be_bytes());
    out.extend_from_slice(&reversed(&hash.to_byte_array()));
    out.extend_from_slice(&(h.version.to_consensus() as u32).to_be_bytes());
    out.extend_from_slice(&reversed(&h.prev_blockhash.to_byte_array()));
    out.extend_from_slice(&reversed(&h.merkle_root.to_byte_array()));
    out.extend_from_slice(&h.time.to_be_bytes());
    out.extend_from_slice(&h.bits.to_consensus().to_be_bytes());
    out.extend_from_slice(&h.nonce.to_be_bytes());
    out
}

/// txid ‖ 4 flag bytes → the selected fields, in Hemi's order and widths.
fn tx_by_txid(input: &[u8], v: &BtcAt) -> Vec<u8> {
    if input.len() != 36 {
        return vec![];
    }
    let Some(rec) = txid_of(input).and_then(|t| v.index.tx(&t, v.height)) else { return vec![] };
    let tx = &rec.tx;
    let (f1, f2, f3, f4) = (input[32], input[33], input[34], input[35]);
    let bit = |f: u8, n: u8| f & (1 << n) != 0;
    // As in Hemi, "witness array size" reads bit 6 of the *first* flag byte (the same bit as the
    // containing block): a quirk of its layout that contracts already depend on.
    let witness_sizes = bit(f1, 6);
    let max_inputs = 1usize << ((f3 >> 3) & 0x07);
    let max_outputs = 1usize << (f3 & 0x07);
    let max_sig = 1usize << (4 + ((f4 >> 2) & 0x03));
    let max_script = 1usize << (4 + (f4 & 0x03));
    let mut out = vec![];
    if bit(f1, 6) {
        out.extend_from_slice(&reversed(&rec.block.to_byte_array()));
    }
    if bit(f1, 5) {
        out.extend_from_slice(&(tx.version.0 as u32).to_be_bytes());
    }
    if bit(f1, 4) {
        out.extend_from_slice(&(tx.total_size() as u32).to_be_bytes());
        out.extend_from_slice(&(tx.base_size() as u32).to_be_bytes());
    }
    if bit(f1, 3) {
        out.extend_from_slice(&tx.lock_time.to_consensus_u32().to_be_bytes());
    }
    if bit(f1, 2) {
        out.extend_from_slice(&(tx.input.len().min(u16::MAX as usize) as u16).to_be_bytes());
        for i in tx.input.iter().take(max_inputs) {
            if witness_sizes {
                out.extend_from_slice(&(i.witness.len().min(u16::MAX as usize) as u16).to_be_bytes());
            }
            // Hemi always includes the spent value, and gives up when the source is unknown
            // (which includes a coinbase's null input).
            let Some(value) = spent_value(&i.previous_output, v) else { return vec![] };
            out.extend_from_slice(&value.to_be_bytes());
            if bit(f1, 1) {
                out.extend_from_slice(&reversed(&i.previous_output.txid.to_byte_array()));
                out.extend_from_slice(&i.previous_output.vout.to_be_bytes());
            }
            if bit(f1, 0) {
                let sig = i.script_sig.as_bytes();
                out.extend_from_slice(&(sig.len().min(u16::MAX as usize) as u16).to_be_bytes());
                out.extend_from_slice(&sig[..sig.len().min(max_sig)]);
            }
            if bit(f2, 7) {
                out.extend_from_slice(&i.sequence.0.to_be_bytes());
            }
        }
    }
    if bit(f2, 5) {
        let with_unspendable = bit(f2, 3);
        let listed: Vec<(usize, &bitcoin::TxOut)> =
            tx.output.iter().enumerate().filter(|(_, o)| with_unspendable || !o.script_pubkey.is_op_return()).collect();
        out.extend_from_slice(&(listed.len().min(u16::MAX as usize) as u16).to_be_bytes());
        for (vout, o) in listed.into_iter().take(max_outputs) {
            out.extend_from_slice(&o.value.to_sat().to_be_bytes());
            if bit(f2, 4) {
                let s = o.script_pubkey.as_bytes();
                out.extend_from_slice(&(s.len().min(u16::MAX as usize) as u16).to_be_bytes());
                out.extend_from_slice(&s[..s.len().min(max_script)]);
            }
            if bit(f2, 2) {
                let spent = v
                    .index
                    .coin(&OutPoint::new(rec.tx.compute_txid(), vout as u32), v.height)
                    .is_none_or(|c| c.spent_at.is_some_and(|s| s <= v.height));
                out.push(u8::from(spent));
            }
        }
    }
    out
}

pub(crate) fn spent_value(o: &OutPoint, v: &BtcAt) -> Option<u64> {
    let rec = v.index.tx(&o.txid, v.height)?;
    rec.tx.output.get(o.vout as usize).map(|out| out.value.to_sat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Amount, TxOut};
    use bss_btc::testkit::{mine_chain, mine_on};

    /// An address with 20,000 dust outputs: querying it costs gas in proportion, so a call with
    /// the gas of a block cannot scan it, and one that pays gets the right answer.
    #[test]
    fn a_dust_spammed_address_costs_its_caller() {
        let key = bitcoin::PrivateKey::new(
            bitcoin::secp256k1::SecretKey::from_slice(&[7; 32]).expect("key"),
            Network::Regtest,
        );
        let secp = bitcoin::secp256k1::Secp256k1::signing_only();
        let pk = bitcoin::CompressedPublicKey::from_private_key(&secp, &key).expect("pk");
        let addr = bitcoin::Address::p2wpkh(&pk, Network::Regtest);
        let mut blocks = mine_chain(None, 2, 1);
        let mut spam = mine_on(&blocks[1], vec![], 2);
        spam.txdata[0].output = vec![TxOut { value: Amount::from_sat(1), script_pubkey: addr.script_pubkey() }; 20_000];
        blocks.push(spam);
        let index = bss_btc::testkit::TestIndex::of(&blocks);
        let v = BtcAt { index: Arc::new(index.view()), height: 2, network: Network::Regtest };
        let input = addr.to_string().into_bytes();
        let cost = call_cost(BTC_BAL_ADDR, &input, Some(&v));
        assert_eq!(cost, 10_000 + 20_000 * GAS_PER_SCANNED_OUTPUT);
        assert!(cost > 1_000_000, "a scan of 20,000 outputs is priced above a million gas");
        let mut page = input.clone();
        page.extend_from_slice(&[0, 0, 0, 5]);
        assert_eq!(call_cost(BTC_UTXOS_ADDR_LIST, &page, Some(&v)), 25_000 + 20_000 * GAS_PER_SCANNED_OUTPUT);
        // Paid for: the answer is right.
        assert_eq!(run_hvm(BTC_BAL_ADDR, &input, &v), 20_000u64.to_be_bytes().to_vec());
        assert_eq!(run_hvm(BTC_UTXOS_ADDR_LIST, &page, &v)[0], 5);
        // An address with nothing costs the flat price.
        let other = bitcoin::Address::p2wpkh(
            &bitcoin::CompressedPublicKey::from_private_key(
                &secp,
                &bitcoin::PrivateKey::new(
                    bitcoin::secp256k1::SecretKey::from_slice(&[8; 32]).expect("key"),
                    Network::Regtest,
                ),
            )
            .expect("pk"),
            Network::Regtest,
        );
        assert_eq!(call_cost(BTC_BAL_ADDR, other.to_string().as_bytes(), Some(&v)), 10_000);
    }
}
