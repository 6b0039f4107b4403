use crate::telemetry::{counter, gauge};
use metrics::{Counter, Gauge};

/// The tunnel service's metrics.
#[derive(Clone)]
pub struct TunnelMetrics {
    pub vault_sats: Gauge,
    pub hbtc_supply_sats: Gauge,
    pub pending_withdrawal_sats: Gauge,
    /// 1 while hBTC supply + burned-but-unpaid ≤ vault balance, else 0.
    pub invariant_ok: Gauge,
    pub invariant_violations: Counter,
    pub payouts_broadcast: Counter,
    pub payouts_confirmed: Counter,
    pub consolidations_confirmed: Counter,
    pub ledger_checkpoints: Counter,
    pub ledger_fallback_views: Counter,
    pub ledger_restored_l2: Gauge,
    pub sigs_accepted: Counter,
    pub sigs_refused: Counter,
    pub sigs_dropped_busy: Counter,
}

impl TunnelMetrics {
    pub fn register() -> Self {
        Self {
            vault_sats: gauge("bss_tunnel_vault_sats", "Vault balance in the agreed Bitcoin view, sats"),
            hbtc_supply_sats: gauge("bss_tunnel_hbtc_supply_sats", "hBTC totalSupply at the committed head, sats"),
            pending_withdrawal_sats: gauge(
                "bss_tunnel_pending_withdrawal_sats",
                "hBTC burned by withdrawals whose payout is not yet in the agreed Bitcoin view, sats",
            ),
            invariant_ok: gauge(
                "bss_tunnel_invariant_ok",
                "1 while hBTC totalSupply + burned-but-unpaid <= vault balance, 0 when violated",
            ),
            invariant_violations: counter(
                "bss_tunnel_invariant_violations_total",
                "Committed blocks after which hBTC supply + burned-but-unpaid exceeded the vault balance",
            ),
            payouts_broadcast: counter(
                "bss_tunnel_payouts_broadcast_total",
                "Signed payout txs this operator sent to bitcoind",
            ),
            payouts_confirmed: counter(
                "bss_tunnel_payouts_confirmed_total",
                "Withdrawal batches paid in the agreed Bitcoin view",
            ),
            consolidations_confirmed: counter(
                "bss_tunnel_consolidations_confirmed_total",
                "Vault consolidations (batches that only merge coins) confirmed in the agreed Bitcoin view",
            ),
            ledger_checkpoints: counter(
                "bss_tunnel_ledger_checkpoints_total",
                "Tunnel ledger checkpoints written to the node's database",
            ),
            ledger_fallback_views: counter(
                "bss_tunnel_ledger_fallback_views_total",
                "Committed blocks whose own Bitcoin view this node could not rebuild (applied on its best view)",
            ),
            ledger_restored_l2: gauge(
                "bss_tunnel_ledger_restored_l2",
                "The L2 block of the ledger checkpoint the tunnel service last started from (0: none, replayed from block 1)",
            ),
            sigs_accepted: counter(
                "bss_tunnel_signatures_accepted_total",
                "Payout signatures from other operators kept",
            ),
            sigs_refused: counter(
                "bss_tunnel_signatures_refused_total",
                "Payout signatures from other operators that did not verify or named no open batch",
            ),
            sigs_dropped_busy: counter(
                "bss_tunnel_signatures_dropped_total",
                "Payout signatures dropped: the tunnel inbox was full",
            ),
        }
    }
}
