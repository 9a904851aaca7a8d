//! Shared reservations on etcd: per address a key `hold/<ip>` valued `<owner> <holder>...`,
//! beside the address key (`addr/<ip>`, stamped `host=*`: no host's lease, and carrying no
//! host lease). Every hold and unhold is one transaction comparing the hold key's
//! `mod_revision` with the one read, so they serialise per address; the one that claims the
//! address (the first hold) or releases it (the last unhold) is also a versioned commit (the
//! version compared and moved, the change logged for the other hosts' caches), so no
//! allocation anywhere can take the address while a holder keeps it. A lost reply is
//! harmless: both are idempotent, so the state is read again and the step recomputed.

use std::net::IpAddr;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

use crate::error::Result;
use crate::ipam::lease::{Owner, Record};
use crate::ipam::network::check_name;
use crate::ipam::store::holds::{
    check_holder, decode_entry, encode_entry, owner_elsewhere, taken, Hold, Unheld,
};
use crate::ipam::store::Change;

use super::{codec, get_kvs, EtcdStore, LOG_KEEP};

/// The host stamp of a shared reservation's address key: no host's (host names cannot be it).
pub(super) const SHARED_HOST: &str = "*";

/// What one read found: the version, every address key (record, host), every hold.
struct Seen {
    version: u64,
    records: Vec<(Record, String)>,
    holds: Vec<(Hold, i64)>,
}

impl EtcdStore {
    async fn read_holds(&self, name: &str) -> Result<Seen> {
        let k = &self.keys;
        let prefix = || Some(GetOptions::new().with_prefix());
        let txn = Txn::new().and_then(vec![
            TxnOp::get(k.version(name), None),
            TxnOp::get(k.addrs(name), prefix()),
            TxnOp::get(k.holds(name), prefix()),
        ]);
        let r = self.txn("read shared reservations", txn).await?;
        let ops = r.op_responses();
        let Some(v) = get_kvs(&ops[0]).first() else {
            return Err(self.not_found(name));
        };
        let version = codec::parse_version(v.key(), v.value())?;
        let addrs = k.addrs(name);
        let mut records = Vec::new();
        for kv in get_kvs(&ops[1]) {
            let ip: IpAddr = codec::suffix(kv.key(), &addrs)?
                .parse()
                .map_err(|_| codec::corrupt(kv.key(), "the key does not end in an IP address"))?;
            records.push(codec::decode_record(kv.key(), ip, kv.value())?);
        }
        let hp = k.holds(name);
        let mut holds = Vec::new();
        for kv in get_kvs(&ops[2]) {
            let ip: IpAddr = codec::suffix(kv.key(), &hp)?
                .parse()
                .map_err(|_| codec::corrupt(kv.key(), "the key does not end in an IP address"))?;
            let (owner, holders) = codec::text(kv.key(), kv.value())
                .ok()
                .and_then(decode_entry)
                .ok_or_else(|| {
                    codec::corrupt(kv.key(), "the value is not `<owner> <holder>...`")
                })?;
            holds.push((
                Hold {
                    addr: ip,
                    owner,
                    holders,
                },
                kv.mod_revision(),
            ));
        }
        Ok(Seen {
            version,
            records,
            holds,
        })
    }

    /// The writes and compares of a versioned commit of one change (the version moved, the
    /// change logged), as [`EtcdStore::commit`] makes them.
    fn versioned(&self, name: &str, expected: u64, change: Change) -> (Compare, Vec<TxnOp>) {
        let k = &self.keys;
        let next = expected + 1;
        let mut ops = vec![
            TxnOp::put(k.version(name), next.to_string(), None),
            TxnOp::put(
                k.log(name, next),
                codec::encode_log(&self.nonce(), std::slice::from_ref(&change)),
                None,
            ),
        ];
        if next > LOG_KEEP {
            ops.push(TxnOp::delete(k.log(name, next - LOG_KEEP), None));
        }
        let key = k.addr(
            name,
            match &change {
                Change::Claim(r) | Change::Release(r) => r.addr,
                Change::Cursor { addr, .. } => *addr,
            },
        );
        match change {
            Change::Claim(r) => {
                ops.push(TxnOp::put(key, codec::encode_record(&r, SHARED_HOST), None))
            }
            _ => ops.push(TxnOp::delete(key, None)),
        }
        let version = Compare::value(k.version(name), CompareOp::Equal, expected.to_string());
        (version, ops)
    }

    fn owner_compares(&self, name: &str, r: &Record) -> [Compare; 2] {
        let key = self.keys.addr(name, r.addr);
        let (lo, hi) = codec::owner_range(&r.owner);
        [
            Compare::value(key.clone(), CompareOp::Greater, lo),
            Compare::value(key, CompareOp::Less, hi),
        ]
    }

    pub(super) async fn do_hold(&self, name: &str, record: &Record, holder: &str) -> Result<Hold> {
        check_name(name)?;
        check_holder(holder)?;
        let hkey = self.keys.hold(name, record.addr);
        loop {
            let seen = self.read_holds(name).await?;
            let at = seen.records.iter().find(|(r, _)| r.addr == record.addr);
            let (mut holders, hrev) = match seen.holds.iter().find(|(h, _)| h.addr == record.addr) {
                Some((h, rev)) if h.owner == record.owner => (h.holders.clone(), *rev),
                Some((_, rev)) => (Vec::new(), *rev), // stale: the lease decides
                None => (Vec::new(), 0),
            };
            let mut compares = vec![Compare::mod_revision(hkey.clone(), CompareOp::Equal, hrev)];
            let mut ops = Vec::new();
            match at {
                Some((r, _)) if r.owner != record.owner => {
                    return Err(taken(name, r.addr, &r.owner, &record.owner));
                }
                Some((r, host)) => {
                    if holders.iter().any(|h| h == holder) && host == SHARED_HOST {
                        return Ok(Hold {
                            addr: record.addr,
                            owner: record.owner.clone(),
                            holders,
                        });
                    }
                    compares.extend(self.owner_compares(name, r));
                    if host != SHARED_HOST {
                        // A plain lease of the owner (made before holds existed): adopted, no
                        // longer one host's (that host's leave would be refused for it).
                        ops.push(TxnOp::put(
                            self.keys.addr(name, r.addr),
                            codec::encode_record(r, SHARED_HOST),
                            None,
                        ));
                    }
                }
                None => {
                    if let Some((r, _)) = seen.records.iter().find(|(r, _)| r.owner == record.owner)
                    {
                        return Err(owner_elsewhere(name, &r.owner, r.addr, record.addr));
                    }
                    let (version, writes) =
                        self.versioned(name, seen.version, Change::Claim(record.clone()));
                    compares.push(version);
                    compares.push(Compare::version(
                        self.keys.addr(name, record.addr),
                        CompareOp::Equal,
                        0,
                    ));
                    ops.extend(writes);
                }
            }
            if !holders.iter().any(|h| h == holder) {
                holders.push(holder.to_string());
                holders.sort();
            }
            ops.push(TxnOp::put(
                hkey.clone(),
                encode_entry(&record.owner, &holders),
                None,
            ));
            let txn = Txn::new().when(compares).and_then(ops);
            if self
                .txn("hold a shared reservation", txn)
                .await?
                .succeeded()
            {
                return Ok(Hold {
                    addr: record.addr,
                    owner: record.owner.clone(),
                    holders,
                });
            }
            // Another hold, unhold or commit came between: read again.
        }
    }

    pub(super) async fn do_unhold(
        &self,
        name: &str,
        owner: &Owner,
        holder: &str,
    ) -> Result<Unheld> {
        check_name(name)?;
        check_holder(holder)?;
        loop {
            let seen = self.read_holds(name).await?;
            let rec = seen
                .records
                .iter()
                .find(|(r, _)| r.owner == *owner)
                .map(|(r, _)| r);
            let hold = seen.holds.iter().find(|(h, _)| h.owner == *owner);
            let mut compares = Vec::new();
            let mut ops = Vec::new();
            if let Some((h, rev)) = hold {
                let hkey = self.keys.hold(name, h.addr);
                compares.push(Compare::mod_revision(hkey.clone(), CompareOp::Equal, *rev));
                let rest: Vec<String> =
                    h.holders.iter().filter(|x| *x != holder).cloned().collect();
                if rest.len() == h.holders.len() && !rest.is_empty() {
                    return Ok(Unheld::NotHeld);
                }
                if !rest.is_empty() {
                    ops.push(TxnOp::put(hkey, encode_entry(owner, &rest), None));
                    let txn = Txn::new().when(compares).and_then(ops);
                    if self
                        .txn("unhold a shared reservation", txn)
                        .await?
                        .succeeded()
                    {
                        return Ok(Unheld::Kept(rest));
                    }
                    continue;
                }
                ops.push(TxnOp::delete(hkey, None));
            }
            let released = match rec {
                Some(r) => {
                    // The last holder: the release goes in the same transaction.
                    let (version, writes) =
                        self.versioned(name, seen.version, Change::Release(r.clone()));
                    compares.push(version);
                    compares.extend(self.owner_compares(name, r));
                    ops.extend(writes);
                    Unheld::Released(r.addr)
                }
                None if ops.is_empty() => return Ok(Unheld::NotHeld),
                None => Unheld::NotHeld, // a hold key whose lease is gone: tidy it
            };
            let txn = Txn::new().when(compares).and_then(ops);
            if self
                .txn("unhold a shared reservation", txn)
                .await?
                .succeeded()
            {
                return Ok(released);
            }
        }
    }

    pub(super) async fn do_holds(&self, name: &str) -> Result<Vec<Hold>> {
        check_name(name)?;
        let seen = self.read_holds(name).await?;
        Ok(seen
            .holds
            .into_iter()
            .map(|(h, _)| h)
            .filter(|h| {
                seen.records
                    .iter()
                    .any(|(r, _)| r.addr == h.addr && r.owner == h.owner)
            })
            .collect())
    }
}
