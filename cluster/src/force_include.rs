//! `bss force-include`: post a signed L2 tx to Bitcoin in a taproot envelope, for when the
//! federation censors it (README "Censorship resistance"). Every operator must execute it first
//! in the L2 block whose Bitcoin view gives the reveal tx `forced_confirmations` confirmations.

use crate::btc_url::BtcUrl;
use bitcoincore_rpc::RpcApi;
use bss_actors::btc::forced_tx::ForcedPoster;
use bss_actors::hvm::SignedTx;
use clap::Args;
use eyre::{bail, eyre, Result, WrapErr};
use std::path::PathBuf;

#[derive(Args)]
pub struct ForceIncludeArgs {
    /// The Bitcoin node (http://user:pass@host:port).
    #[arg(long)]
    pub btc_rpc: String,
    /// The signed L2 transaction (0x-prefixed EIP-2718 bytes, as eth_sendRawTransaction takes).
    /// Repeat it to post several, chained from one coin, so that they land in one Bitcoin block
    /// and fall due together, in the order given.
    #[arg(long, required = true)]
    pub raw: Vec<String>,
    /// Secret key (hex, 32 bytes) whose P2TR key-path coin pays the postings. Without it, on
    /// regtest only, a throwaway key is funded by mining.
    #[arg(long, requires = "utxo")]
    pub key: Option<PathBuf>,
    /// With --key: the coin to spend, TXID:VOUT (a P2TR key-path output of that key).
    #[arg(long, requires = "key")]
    pub utxo: Option<String>,
    /// Fee rate of both txs, sat/vB.
    #[arg(long, default_value_t = 2.0)]
    pub fee_rate: f64,
    /// The federation's `censorship.forced_confirmations` (for the due height printed).
    #[arg(long, default_value_t = 6)]
    pub forced_confirmations: u64,
}

pub fn run(args: ForceIncludeArgs, json_out: bool) -> Result<()> {
    let mut txs = Vec::with_capacity(args.raw.len());
    for (i, raw) in args.raw.iter().enumerate() {
        let raw =
            hex::decode(raw.trim().trim_start_matches("0x")).wrap_err_with(|| format!("--raw #{i} is not hex"))?;
        let tx = SignedTx::decode(&raw).map_err(|e| eyre!("--raw #{i} is not a signed L2 transaction: {e}"))?;
        let chain_id =
            tx.chain_id().ok_or_else(|| eyre!("--raw #{i} names no chain id (pre-EIP-155): it cannot be forced"))?;
        let chain_id =
            u32::try_from(chain_id).map_err(|_| eyre!("chain id {chain_id} does not fit the envelope's u32"))?;
        txs.push((raw, tx, chain_id));
    }
    let client = BtcUrl::parse(&args.btc_rpc)?.client()?;
    let info = client.get_blockchain_info().wrap_err("asking the Bitcoin node")?;
    let network = info.chain;
    let (poster, mut coin, mut value) = match (&args.key, &args.utxo) {
        (Some(key), Some(utxo)) => {
            let secret = bss_actors::node::config::read_secret_file(key)?;
            let secret: [u8; 32] = hex::decode(secret.trim())?.try_into().map_err(|_| eyre!("--key: not 32 bytes"))?;
            let poster = ForcedPoster::new(secret, network).map_err(|e| eyre!("{e}"))?;
            let (txid, vout) = utxo.split_once(':').ok_or_else(|| eyre!("--utxo: expected TXID:VOUT"))?;
            let coin = bitcoin::OutPoint::new(txid.parse()?, vout.parse()?);
            let out = client
                .get_tx_out(&coin.txid, coin.vout, Some(true))?
                .ok_or_else(|| eyre!("--utxo {utxo}: no such unspent output"))?;
            if out.script_pub_key.hex != poster.address().script_pubkey().to_bytes() {
                bail!("--utxo {utxo} does not pay the key's address {}", poster.address());
            }
            (poster, coin, out.value.to_sat())
        }
        _ => {
            if network != bitcoin::Network::Regtest {
                bail!("funding by mining works on regtest only; on {network} pass --key FILE --utxo TXID:VOUT");
            }
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            let poster = ForcedPoster::new(secret, network).map_err(|e| eyre!("{e}"))?;
            let (coin, value) = mine_coin(&client, &poster)?;
            (poster, coin, value)
        }
    };
    for (raw, tx, chain_id) in &txs {
        let posting = poster.post(coin, value, *chain_id, raw, args.fee_rate).map_err(|e| eyre!("{e}"))?;
        let commit = client.send_raw_transaction(&posting.commit).wrap_err("broadcasting the commit tx")?;
        let reveal = client.send_raw_transaction(&posting.reveal).wrap_err("broadcasting the reveal tx")?;
        // The next posting spends this commit's change (output 1, back to the poster).
        coin = bitcoin::OutPoint::new(commit, 1);
        value = posting.commit.output[1].value.to_sat();
        let tip = client.get_block_count()?;
        // Mined in the next block (tip + 1), the reveal has its confirmations at this height.
        let due = tip + args.forced_confirmations;
        if json_out {
            println!(
                "{}",
                serde_json::json!({ "l2TxHash": tx.hash, "commitTxid": commit.to_string(), "revealTxid": reveal.to_string(), "btcTip": tip, "dueBtcHeight": due })
            );
        } else {
            println!("L2 tx     {}", tx.hash);
            println!("commit    {commit}");
            println!("reveal    {reveal}");
            println!(
                "due       in the L2 block whose Bitcoin view reaches height {due} (if the reveal is mined in block {}); \
                 follow it with bss_getForcedTx",
                tip + 1
            );
        }
    }
    Ok(())
}

/// Regtest: mines a coinbase to the poster and 100 blocks on top so that it can be spent.
pub(crate) fn mine_coin(client: &bitcoincore_rpc::Client, poster: &ForcedPoster) -> Result<(bitcoin::OutPoint, u64)> {
    let hashes = client.generate_to_address(1, &poster.address())?;
    let hash = hashes.first().ok_or_else(|| eyre!("generatetoaddress mined nothing"))?;
    let block = client.get_block(hash)?;
    let coinbase = block.txdata.first().ok_or_else(|| eyre!("mined block has no coinbase"))?;
    let vout = coinbase
        .output
        .iter()
        .position(|o| o.script_pubkey == poster.address().script_pubkey())
        .ok_or_else(|| eyre!("the coinbase does not pay the poster"))?;
    client.generate_to_address(100, &crate::regtest::cmd::dev_mining_address())?;
    Ok((bitcoin::OutPoint::new(coinbase.compute_txid(), vout as u32), coinbase.output[vout].value.to_sat()))
}
