//! The per-block write set revm executes against: reads fall through to the parent state (and are
//! cached with their original values), writes stay here until [`WriteSet::finish`] turns them into
//! the block's diff, storage changes and updated state commitment.

use super::leaf_cache::LeafCache;
use super::lthash::{account_value, Leaf, LtHash};
use super::state::{BlockDiff, StateError, StateSource};
use alloy_primitives::{Address, Bytes, B256, U256};
use bss_storage::{AccountRecord, StateChanges};
use revm::bytecode::Bytecode;
use revm::primitives::{AddressMap, KECCAK_EMPTY};
use revm::state::{Account, AccountInfo};
use revm::{Database, DatabaseCommit};
use std::collections::{BTreeMap, HashMap, HashSet};

pub struct WriteSet<'a, S: StateSource> {
    base: &'a S,
    orig_accounts: HashMap<Address, Option<AccountRecord>>,
    orig_slots: HashMap<(Address, U256), U256>,
    accounts: HashMap<Address, Option<AccountRecord>>,
    slots: HashMap<(Address, U256), U256>,
    wiped: HashSet<Address>,
    codes: HashMap<B256, Bytes>,
    code_cache: HashMap<B256, Bytecode>,
}

impl<'a, S: StateSource> WriteSet<'a, S> {
    pub fn new(base: &'a S) -> Self {
        Self {
            base,
            orig_accounts: HashMap::new(),
            orig_slots: HashMap::new(),
            accounts: HashMap::new(),
            slots: HashMap::new(),
            wiped: HashSet::new(),
            codes: HashMap::new(),
            code_cache: HashMap::new(),
        }
    }

    fn original_account(&mut self, address: &Address) -> Result<Option<AccountRecord>, StateError> {
        if let Some(a) = self.orig_accounts.get(address) {
            return Ok(a.clone());
        }
        let a = self.base.account(address)?;
        self.orig_accounts.insert(*address, a.clone());
        Ok(a)
    }

    fn original_slot(&mut self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        if let Some(v) = self.orig_slots.get(&(*address, *slot)) {
            return Ok(*v);
        }
        let v = self.base.storage(address, slot)?;
        self.orig_slots.insert((*address, *slot), v);
        Ok(v)
    }

    fn wipe(&mut self, address: Address) {
        self.wiped.insert(address);
        self.slots.retain(|(a, _), _| *a != address);
    }

    /// All non-zero slots an account had in the parent state.
    fn parent_slots(&self, address: &Address) -> Result<Vec<(U256, U256)>, StateError> {
        self.base.all_slots(address)
    }

    /// Turns the writes into (diff for later blocks, storage changes, new accumulator), taking
    /// the leaves' expansions from `cache` where it remembers them.
    pub fn finish(
        &mut self,
        parent_acc: &LtHash,
        number: u64,
        cache: Option<&LeafCache>,
    ) -> Result<(BlockDiff, StateChanges, LtHash), StateError> {
        let mut leaves: Vec<(bool, Leaf)> = Vec::new();
        let accounts = std::mem::take(&mut self.accounts);
        let mut account_changes: Vec<(Address, Option<AccountRecord>)> = Vec::new();
        for (addr, new) in &accounts {
            let old = self.original_account(addr)?;
            if &old == new {
                continue;
            }
            if let Some(o) = &old {
                leaves.push((false, Leaf::Account(*addr, account_value(o.nonce, &o.balance, &o.code_hash))));
            }
            if let Some(n) = new {
                leaves.push((true, Leaf::Account(*addr, account_value(n.nonce, &n.balance, &n.code_hash))));
            }
            account_changes.push((*addr, new.clone()));
        }
        account_changes.sort_by_key(|(a, _)| *a);

        let mut final_slots: BTreeMap<(Address, U256), U256> = BTreeMap::new();
        let wiped = std::mem::take(&mut self.wiped);
        for addr in &wiped {
            for (slot, value) in self.parent_slots(addr)? {
                leaves.push((false, Leaf::Slot(*addr, slot, value)));
                final_slots.insert((*addr, slot), U256::ZERO);
            }
        }
        let slots = std::mem::take(&mut self.slots);
        for ((addr, slot), new) in &slots {
            let old = if wiped.contains(addr) { U256::ZERO } else { self.original_slot(addr, slot)? };
            if old == *new {
                continue;
            }
            if !old.is_zero() {
                leaves.push((false, Leaf::Slot(*addr, *slot, old)));
            }
            if !new.is_zero() {
                leaves.push((true, Leaf::Slot(*addr, *slot, *new)));
            }
            final_slots.insert((*addr, *slot), *new);
        }
        let mut acc = parent_acc.clone();
        match cache {
            Some(cache) => acc.apply_cached(&leaves, cache),
            None => acc.apply(&leaves),
        }
        let codes = std::mem::take(&mut self.codes);
        let mut code_list: Vec<(B256, Bytes)> = codes.iter().map(|(h, c)| (*h, c.clone())).collect();
        code_list.sort_by_key(|(h, _)| *h);
        let changes = StateChanges {
            accounts: account_changes.clone(),
            storage: final_slots.iter().map(|((a, s), v)| (*a, *s, *v)).collect(),
            codes: code_list,
            state_accumulator: acc.to_bytes(),
        };
        let diff = BlockDiff {
            number,
            hash: B256::ZERO,
            accounts: account_changes.into_iter().collect(),
            storage: final_slots.into_iter().collect(),
            wiped,
            codes,
        };
        Ok((diff, changes, acc))
    }
}

impl<S: StateSource> Database for WriteSet<'_, S> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        let rec = match self.accounts.get(&address) {
            Some(a) => a.clone(),
            None => self.original_account(&address)?,
        };
        Ok(rec.map(|r| AccountInfo {
            balance: r.balance,
            nonce: r.nonce,
            code_hash: r.code_hash,
            // Loaded lazily through `code_by_hash` (the default would be empty code).
            code: None,
            account_id: None,
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        if code_hash == KECCAK_EMPTY || code_hash.is_zero() {
            return Ok(Bytecode::default());
        }
        if let Some(c) = self.code_cache.get(&code_hash) {
            return Ok(c.clone());
        }
        let bytes = match self.codes.get(&code_hash) {
            Some(c) => c.clone(),
            None => self.base.code(&code_hash)?.ok_or(StateError::MissingCode(code_hash))?,
        };
        let code = Bytecode::new_raw(bytes);
        self.code_cache.insert(code_hash, code.clone());
        Ok(code)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, StateError> {
        if let Some(v) = self.slots.get(&(address, index)) {
            return Ok(*v);
        }
        if self.wiped.contains(&address) {
            return Ok(U256::ZERO);
        }
        self.original_slot(&address, &index)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        Ok(self.base.block_hash(number)?.unwrap_or_default())
    }
}

impl<S: StateSource> DatabaseCommit for WriteSet<'_, S> {
    fn commit(&mut self, changes: AddressMap<Account>) {
        for (addr, account) in changes {
            if !account.is_touched() {
                continue;
            }
            if account.is_selfdestructed() {
                self.accounts.insert(addr, None);
                self.wipe(addr);
                continue;
            }
            if account.is_created() {
                self.wipe(addr);
            }
            if account.is_empty() {
                self.accounts.insert(addr, None);
                continue;
            }
            let info = &account.info;
            if let Some(code) = &info.code {
                if info.code_hash != KECCAK_EMPTY && !code.is_empty() {
                    self.codes.entry(info.code_hash).or_insert_with(|| code.original_bytes());
                    self.code_cache.entry(info.code_hash).or_insert_with(|| code.clone());
                }
            }
            self.accounts.insert(
                addr,
                Some(AccountRecord { nonce: info.nonce, balance: info.balance, code_hash: info.code_hash }),
            );
            for (slot, value) in account.storage {
                if value.is_changed() {
                    self.slots.insert((addr, slot), value.present_value);
                }
            }
        }
    }
}
