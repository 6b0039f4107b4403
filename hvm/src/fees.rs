//! EIP-1559 base fee and intrinsic gas.

use alloy_eips::eip2930::AccessList;

/// The next block's base fee from its parent (EIP-1559, elasticity 2, change denominator 8),
/// never below `min_base_fee`.
pub fn next_base_fee(parent_base_fee: u64, parent_gas_used: u64, gas_limit: u64, min_base_fee: u64) -> u64 {
    let target = (gas_limit / 2).max(1) as u128;
    let used = parent_gas_used as u128;
    let base = parent_base_fee as u128;
    let next = if used == target {
        base
    } else if used > target {
        let delta = (base * (used - target) / target / 8).max(1);
        base + delta
    } else {
        let delta = base * (target - used) / target / 8;
        base.saturating_sub(delta)
    };
    u64::try_from(next).unwrap_or(u64::MAX).max(min_base_fee)
}

/// Intrinsic gas of a transaction (Shanghai/Cancun rules).
pub fn intrinsic_gas(input: &[u8], is_create: bool, access_list: Option<&AccessList>) -> u64 {
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    let non_zeros = input.len() as u64 - zeros;
    let mut gas = 21_000 + zeros * 4 + non_zeros * 16;
    if is_create {
        gas += 32_000 + 2 * (input.len() as u64).div_ceil(32);
    }
    if let Some(list) = access_list {
        for item in list.iter() {
            gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
        }
    }
    gas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_fee_moves_toward_target() {
        assert_eq!(next_base_fee(1_000_000_000, 15_000_000, 30_000_000, 7), 1_000_000_000);
        assert_eq!(next_base_fee(1_000_000_000, 30_000_000, 30_000_000, 7), 1_125_000_000);
        assert_eq!(next_base_fee(1_000_000_000, 0, 30_000_000, 7), 875_000_000);
        assert_eq!(next_base_fee(8, 0, 30_000_000, 7), 7);
    }

    #[test]
    fn intrinsic() {
        assert_eq!(intrinsic_gas(&[], false, None), 21_000);
        assert_eq!(intrinsic_gas(&[0, 1], false, None), 21_020);
        assert_eq!(intrinsic_gas(&[1; 32], true, None), 21_000 + 512 + 32_000 + 2);
    }
}
