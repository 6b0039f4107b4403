//! The state commitment: a lattice hash (LtHash, Bellare–Micciancio; as used for Solana's
//! accounts hash) over every account and storage leaf.
//!
//! The accumulator is 1024 lanes of u16. Each leaf is expanded with blake3's XOF into 2048 bytes
//! and added lane-wise (wrapping); removing a leaf subtracts it. So a block updates the commitment
//! in time proportional to what it changed, the result depends only on the resulting state (not on
//! the order of changes), and any change of any account, slot or code changes it. The state root
//! in a header is keccak256 of the accumulator bytes.
//!
//! What it does not give: Merkle proofs of single accounts (no `eth_getProof`).

use alloy_primitives::{keccak256, Address, B256, U256};

pub const LANES: usize = 1024;
pub const BYTES: usize = LANES * 2;

/// One leaf's expansion: what it adds to (or removes from) the accumulator.
pub type Lanes = [u16; LANES];

#[derive(Clone, PartialEq, Eq)]
pub struct LtHash {
    lanes: Box<[u16; LANES]>,
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", self.root())
    }
}

impl Default for LtHash {
    fn default() -> Self {
        Self { lanes: Box::new([0u16; LANES]) }
    }
}

fn expand(domain: u8, key: &[u8], value: &[u8]) -> [u16; LANES] {
    let mut out = [0u16; LANES];
    expand_to(domain, key, value, &mut out);
    out
}

/// [`expand`] into `out`, which it overwrites.
fn expand_to(domain: u8, key: &[u8], value: &[u8], out: &mut Lanes) {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[domain]);
    hasher.update(&(key.len() as u32).to_be_bytes());
    hasher.update(key);
    hasher.update(value);
    let mut bytes = [0u8; BYTES];
    hasher.finalize_xof().fill(&mut bytes);
    for (lane, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *lane = u16::from_le_bytes([pair[0], pair[1]]);
    }
}

const ACCOUNT: u8 = 1;
const SLOT: u8 = 2;

/// The bytes that identify an account's value in the commitment.
pub fn account_value(nonce: u64, balance: &U256, code_hash: &B256) -> [u8; 72] {
    let mut v = [0u8; 72];
    v[..8].copy_from_slice(&nonce.to_be_bytes());
    v[8..40].copy_from_slice(&balance.to_be_bytes::<32>());
    v[40..].copy_from_slice(code_hash.as_slice());
    v
}

impl LtHash {
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != BYTES {
            return None;
        }
        let mut lanes = Box::new([0u16; LANES]);
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane = u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]);
        }
        Some(Self { lanes })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.lanes.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    pub(crate) fn add(&mut self, leaf: &Lanes) {
        for (a, b) in self.lanes.iter_mut().zip(leaf) {
            *a = a.wrapping_add(*b);
        }
    }

    pub(crate) fn sub(&mut self, leaf: &Lanes) {
        for (a, b) in self.lanes.iter_mut().zip(leaf) {
            *a = a.wrapping_sub(*b);
        }
    }

    pub fn add_account(&mut self, addr: &Address, value: &[u8; 72]) {
        self.add(&expand(ACCOUNT, addr.as_slice(), value));
    }

    pub fn remove_account(&mut self, addr: &Address, value: &[u8; 72]) {
        self.sub(&expand(ACCOUNT, addr.as_slice(), value));
    }

    pub fn add_slot(&mut self, addr: &Address, slot: &U256, value: &U256) {
        self.add(&expand(SLOT, &slot_key(addr, slot), &value.to_be_bytes::<32>()));
    }

    pub fn remove_slot(&mut self, addr: &Address, slot: &U256, value: &U256) {
        self.sub(&expand(SLOT, &slot_key(addr, slot), &value.to_be_bytes::<32>()));
    }

    /// keccak256 of the accumulator: the header's `state_root`.
    pub fn root(&self) -> B256 {
        keccak256(self.to_bytes())
    }
}

/// One leaf of the state, to add to or remove from the commitment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Leaf {
    Account(Address, [u8; 72]),
    Slot(Address, U256, U256),
}

impl Leaf {
    pub(crate) fn expand(&self) -> Lanes {
        let mut out = [0u16; LANES];
        self.expand_to(&mut out);
        out
    }

    /// This leaf's expansion, written over `out`.
    pub(crate) fn expand_to(&self, out: &mut Lanes) {
        match self {
            Leaf::Account(a, v) => expand_to(ACCOUNT, a.as_slice(), v, out),
            Leaf::Slot(a, s, v) => expand_to(SLOT, &slot_key(a, s), &v.to_be_bytes::<32>(), out),
        }
    }
}

/// Below this many leaves one thread is faster than two.
const PARALLEL_MIN: usize = 256;

impl LtHash {
    pub(crate) fn merge(&mut self, other: &LtHash) {
        self.add(&other.lanes);
    }

    /// Adds (`add`) or removes one leaf's expansion.
    pub(crate) fn change(&mut self, add: bool, lanes: &Lanes) {
        if add {
            self.add(lanes)
        } else {
            self.sub(lanes)
        }
    }

    /// Applies many leaf changes (`true` adds, `false` removes). The accumulator is a sum, so
    /// the leaves are expanded on two threads and the partial sums added.
    pub fn apply(&mut self, leaves: &[(bool, Leaf)]) {
        let mut refs: Vec<&(bool, Leaf)> = leaves.iter().collect();
        self.merge(&sum_in_halves(&mut refs, |part| {
            let mut sum = LtHash::default();
            for (add, leaf) in part.iter() {
                sum.change(*add, &leaf.expand());
            }
            sum
        }));
    }
}

/// `sum` of `items`, computed on two threads (a half each, partial sums added) when there are
/// enough to pay for the second thread.
pub(crate) fn sum_in_halves<T: Send>(items: &mut [T], sum: impl Fn(&mut [T]) -> LtHash + Sync) -> LtHash {
    if items.len() < PARALLEL_MIN {
        return sum(items);
    }
    let half = items.len() / 2;
    let (left, right) = items.split_at_mut(half);
    let (mut total, other) = std::thread::scope(|s| {
        let helper = s.spawn(|| sum(right));
        (sum(left), helper.join())
    });
    // Summing expansions cannot panic; if the helper did, its half is redone here.
    total.merge(&other.unwrap_or_else(|_| sum(&mut items[half..])));
    total
}

fn slot_key(addr: &Address, slot: &U256) -> [u8; 52] {
    let mut k = [0u8; 52];
    k[..20].copy_from_slice(addr.as_slice());
    k[20..].copy_from_slice(&slot.to_be_bytes::<32>());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_reversible() {
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        let va = account_value(1, &U256::from(5), &B256::ZERO);
        let vb = account_value(0, &U256::from(7), &B256::ZERO);
        let mut x = LtHash::default();
        x.add_account(&a, &va);
        x.add_account(&b, &vb);
        let mut y = LtHash::default();
        y.add_account(&b, &vb);
        y.add_account(&a, &va);
        assert_eq!(x.root(), y.root());
        let before = x.root();
        x.add_slot(&a, &U256::from(1), &U256::from(9));
        assert_ne!(x.root(), before);
        x.remove_slot(&a, &U256::from(1), &U256::from(9));
        assert_eq!(x.root(), before);
        assert_eq!(LtHash::from_bytes(&x.to_bytes()).expect("bytes").root(), before);
    }

    #[test]
    fn parallel_apply_equals_sequential() {
        let leaves: Vec<(bool, Leaf)> = (0..600u64)
            .map(|i| {
                let a = Address::with_last_byte((i % 250) as u8);
                let leaf = if i % 3 == 0 {
                    Leaf::Slot(a, U256::from(i), U256::from(i + 1))
                } else {
                    Leaf::Account(a, account_value(i, &U256::from(i), &B256::ZERO))
                };
                (i % 5 != 0, leaf)
            })
            .collect();
        let mut par = LtHash::default();
        par.apply(&leaves);
        let mut seq = LtHash::default();
        for (add, leaf) in &leaves {
            seq.change(*add, &leaf.expand());
        }
        assert_eq!(par, seq);
    }

    #[test]
    fn any_field_changes_the_root() {
        let a = Address::repeat_byte(1);
        let roots: Vec<_> = [
            account_value(1, &U256::from(5), &B256::ZERO),
            account_value(2, &U256::from(5), &B256::ZERO),
            account_value(1, &U256::from(6), &B256::ZERO),
            account_value(1, &U256::from(5), &B256::repeat_byte(1)),
        ]
        .iter()
        .map(|v| {
            let mut h = LtHash::default();
            h.add_account(&a, v);
            h.root()
        })
        .collect();
        for i in 0..roots.len() {
            for j in i + 1..roots.len() {
                assert_ne!(roots[i], roots[j]);
            }
        }
    }
}
