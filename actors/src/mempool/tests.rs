//! The mempool actor's message handling through its handle.

use super::{MempoolActor, MempoolHandle, SenderState};
use crate::hvm::TxError;
use crate::testkit::transfer;
use actix::prelude::*;
use alloy_primitives::U256;

#[actix::test]
async fn admits_selects_in_nonce_order_replaces_only_with_a_bump_and_forgets_committed() {
    let pool = MempoolHandle::new(MempoolActor::new(Default::default()).start());
    let rich = SenderState { nonce: 0, balance: U256::from(10u128.pow(20)) };
    for n in [1, 0, 2] {
        pool.add(transfer(n, 3), rich).await.expect("running").expect("admitted");
    }
    let same_price = pool.add(transfer(1, 3), rich).await.expect("running");
    assert!(matches!(same_price, Err(TxError::AlreadyKnown)), "{same_price:?}");
    let no_bump = pool.add(transfer(1, 4), rich).await.expect("running");
    assert!(
        matches!(no_bump, Err(TxError::ReplacementUnderpriced)),
        "a replacement must raise both fees by 10%: {no_bump:?}"
    );
    let picked: Vec<u64> =
        pool.select(1_000, 30_000_000, 10).await.expect("select").iter().map(|t| t.nonce()).collect();
    assert_eq!(picked, vec![0, 1, 2], "one sender's txs leave in nonce order");
    assert_eq!(pool.status().await.expect("status"), (3, 0));
    // Block committed up to nonce 2: the first two leave, the third stays pending.
    let sender = transfer(0, 3).sender;
    pool.committed(1, vec![(sender, 2)]);
    assert_eq!(pool.status().await.expect("status"), (1, 0));
    assert_eq!(pool.pending_nonce(sender).await.expect("running"), Some(3));
    // A tx a builder found invalid is dropped.
    pool.drop_invalid(vec![transfer(2, 3).hash]);
    assert_eq!(pool.status().await.expect("status"), (0, 0));
}
