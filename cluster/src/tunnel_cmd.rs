//! `bss tunnel deposit`: lock BTC in the federation's vault for hBTC on L2 (regtest: funded by
//! mining, so the flow can be tried without a wallet). The vault address and chain id come from
//! an operator's `bss_tunnelInfo`; the deposit is a tx paying the vault with the OP_RETURN
//! `"BSSD" | 1 | chain_id | recipient`.

use crate::bench::client::RpcClient;
use crate::btc_url::BtcUrl;
use alloy_primitives::Address;
use bitcoin::{Amount, TxOut};
use bitcoincore_rpc::RpcApi;
use bss_actors::btc::deposit::deposit_output;
use bss_actors::btc::forced_tx::ForcedPoster;
use clap::{Args, Subcommand};
use eyre::{bail, eyre, Result, WrapErr};
use serde_json::json;
use std::str::FromStr;

#[derive(Args)]
pub struct TunnelArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Pay the vault N sats for hBTC to an L2 address (regtest: funded by mining).
    Deposit {
        /// The Bitcoin node (http://user:pass@host:port).
        #[arg(long, env = "BSS_BTC_RPC", hide_env_values = true)]
        btc_rpc: String,
        /// An operator's JSON-RPC URL (for the vault address and chain id).
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// The L2 address that receives the hBTC.
        #[arg(long)]
        to: String,
        /// Satoshis to lock (= hBTC units minted).
        #[arg(long)]
        sats: u64,
        /// Fee rate, sat/vB.
        #[arg(long, default_value_t = 2.0)]
        fee_rate: f64,
    },
}

pub fn run(args: TunnelArgs, json_out: bool) -> Result<()> {
    let What::Deposit { btc_rpc, rpc, to, sats, fee_rate } = args.what;
    let recipient = Address::from_str(&to).map_err(|e| eyre!("--to {to}: not an L2 address: {e}"))?;
    let mut l2 = RpcClient::new(&rpc);
    let info = l2.call("bss_tunnelInfo", json!([])).map_err(|e| eyre!("bss_tunnelInfo at {rpc}: {e}"))?;
    let chain_id = l2.call("eth_chainId", json!([])).map_err(|e| eyre!("eth_chainId at {rpc}: {e}"))?;
    let chain_id = u64::from_str_radix(chain_id.as_str().unwrap_or_default().trim_start_matches("0x"), 16)?;
    let chain_id = u32::try_from(chain_id).map_err(|_| eyre!("chain id {chain_id} does not fit a deposit's u32"))?;
    let min = info["minDepositSats"].as_u64().unwrap_or(0);
    if sats < min {
        bail!("--sats {sats} is below the federation's minimum deposit ({min}): it would never mint");
    }
    let client = BtcUrl::parse(&btc_rpc)?.client()?;
    let network = client.get_blockchain_info().wrap_err("asking the Bitcoin node")?.chain;
    if network != bitcoin::Network::Regtest {
        bail!("bss tunnel deposit funds itself by mining, which works on regtest only; on {network} use a wallet");
    }
    let vault = bitcoin::Address::from_str(info["vaultAddress"].as_str().unwrap_or_default())
        .map_err(|e| eyre!("the node reported a malformed vault address: {e}"))?
        .require_network(network)
        .map_err(|e| eyre!("the vault address is for another network: {e}"))?;
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let payer = ForcedPoster::new(secret, network).map_err(|e| eyre!("{e}"))?;
    let (coin, value) = crate::force_include::mine_coin(&client, &payer)?;
    let outputs = vec![
        TxOut { value: Amount::from_sat(sats), script_pubkey: vault.script_pubkey() },
        deposit_output(chain_id, &recipient),
    ];
    let tx = payer.pay(coin, value, outputs, fee_rate).map_err(|e| eyre!("{e}"))?;
    let txid = client.send_raw_transaction(&tx).wrap_err("broadcasting the deposit")?;
    let tip = client.get_block_count()?;
    let confirmations = info["depositConfirmations"].as_u64().unwrap_or(6);
    let due = tip + confirmations;
    if json_out {
        println!(
            "{}",
            json!({ "btcTxid": txid.to_string(), "vault": vault.to_string(), "recipient": recipient, "sats": sats, "btcTip": tip, "dueBtcHeight": due })
        );
    } else {
        println!("deposit   {txid}");
        println!("vault     {vault}");
        println!("to        {recipient} ({sats} sats = {sats} hBTC units)");
        println!("mints     in the L2 block whose Bitcoin view reaches height {due} (if mined in block {}); follow it with bss_getDeposit", tip + 1);
    }
    Ok(())
}
