//! Which hosts use a network: a key `member/<host>` per host, written when the host joins the
//! network (defining it if needed) and deleted when it leaves; the last host to leave deletes
//! the definition. Joins and leaves compare and move the catalog key, like creating and
//! deleting networks, so that they never interleave badly (two last hosts leaving at once).

use std::collections::BTreeMap;
use std::net::IpAddr;

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp};

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::network::{check_name, Network};
use crate::ipam::store::{defined_differently, Joined, Left};

use super::{codec, get_kvs, slices, EtcdStore};

impl EtcdStore {
    /// The hosts using network `name` (those that joined it and have not left), sorted.
    pub async fn members(&self, name: &str) -> Result<Vec<String>> {
        check_name(name)?;
        let prefix = self.keys.members(name);
        let p = prefix.clone();
        let r = self
            .call("read a network's members", move |mut kv| {
                let k = p.clone();
                async move { kv.get(k, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        r.kvs()
            .iter()
            .map(|kv| codec::suffix(kv.key(), &prefix).map(str::to_string))
            .collect()
    }

    /// Defines `network` with this host as its member, or adds this host to the members of
    /// the identical definition stored; another definition under that name is a Conflict.
    pub(super) async fn do_join(&self, network: &Network) -> Result<Joined> {
        let name = network.name();
        check_name(name)?;
        let k = &self.keys;
        loop {
            let (nets, catalog_rev) = self.read_networks().await?;
            let member = TxnOp::put(
                k.member(name, &self.host),
                format!("host={}", self.host),
                self.lease_opts(),
            );
            let (joined, ops) = match nets.iter().find(|n| n.name() == name) {
                Some(n) if n == network => (Joined::Existing, vec![member]),
                Some(n) => return Err(defined_differently(name, n, network)),
                None => {
                    for n in &nets {
                        network.check_disjoint(n)?;
                    }
                    let ops = vec![
                        TxnOp::put(k.net(name), network.to_text(), None),
                        TxnOp::put(k.version(name), "0", None),
                        member,
                    ];
                    (Joined::Created, ops)
                }
            };
            let compares = vec![Compare::mod_revision(
                k.catalog(),
                CompareOp::Equal,
                catalog_rev,
            )];
            if self.catalog_txn("join a network", compares, ops).await? {
                return Ok(joined);
            }
            // Another host changed the catalog meanwhile: look again.
        }
    }

    /// Refuses ([`ErrorKind::Busy`]) if leaving network `name` would be refused because this
    /// host is its last member and other hosts hold leases in it; reads only.
    pub(super) async fn do_check_leave(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let k = &self.keys;
        let prefix = || Some(GetOptions::new().with_prefix());
        let read = Txn::new().and_then(vec![
            TxnOp::get(k.net(name), None),
            TxnOp::get(k.members(name), prefix()),
            TxnOp::get(k.addrs(name), prefix()),
        ]);
        let r = self.txn("check leaving a network", read).await?;
        let got = r.op_responses();
        if get_kvs(&got[0]).is_empty() {
            return Err(self.not_found(name));
        }
        let members = k.members(name);
        for kv in get_kvs(&got[1]) {
            if codec::suffix(kv.key(), &members)? != self.host {
                return Ok(()); // another host keeps the network: leaving only ends this one's use
            }
        }
        let addrs = k.addrs(name);
        let mut held: BTreeMap<String, usize> = BTreeMap::new();
        for kv in get_kvs(&got[2]) {
            let ip: IpAddr = codec::suffix(kv.key(), &addrs)?
                .parse()
                .map_err(|_| codec::corrupt(kv.key(), "the key does not end in an IP address"))?;
            let host = codec::decode_record(kv.key(), ip, kv.value())?.1;
            if host != self.host {
                *held.entry(host).or_default() += 1;
            }
        }
        if held.is_empty() {
            Ok(())
        } else {
            Err(leases_block_delete(name, &held))
        }
    }

    /// Drops this host's membership of network `name` (and its slices there, which hold no
    /// lease of it); the last member deletes the network, which needs every lease released.
    pub(super) async fn do_leave(&self, name: &str) -> Result<Left> {
        check_name(name)?;
        let k = &self.keys;
        let prefix = || Some(GetOptions::new().with_prefix());
        loop {
            let read = Txn::new().and_then(vec![
                TxnOp::get(k.catalog(), None),
                TxnOp::get(k.net(name), None),
                TxnOp::get(k.members(name), prefix()),
                TxnOp::get(k.slices(name), prefix()),
                TxnOp::get(k.addrs(name), prefix()),
            ]);
            let r = self.txn("leave a network", read).await?;
            let got = r.op_responses();
            let catalog_rev = get_kvs(&got[0]).first().map_or(0, |kv| kv.mod_revision());
            if get_kvs(&got[1]).is_empty() {
                return Err(self.not_found(name));
            }
            let members = k.members(name);
            let mut others = Vec::new();
            for kv in get_kvs(&got[2]) {
                let host = codec::suffix(kv.key(), &members)?;
                if host != self.host {
                    others.push(host.to_string());
                }
            }
            let addrs = k.addrs(name);
            let mut held: BTreeMap<String, usize> = BTreeMap::new();
            for kv in get_kvs(&got[4]) {
                let ip: IpAddr = codec::suffix(kv.key(), &addrs)?.parse().map_err(|_| {
                    codec::corrupt(kv.key(), "the key does not end in an IP address")
                })?;
                *held
                    .entry(codec::decode_record(kv.key(), ip, kv.value())?.1)
                    .or_default() += 1;
            }
            let catalog = Compare::mod_revision(k.catalog(), CompareOp::Equal, catalog_rev);
            if others.is_empty() {
                if !held.is_empty() {
                    return Err(leases_block_delete(name, &held));
                }
                let compares = vec![
                    catalog,
                    Compare::version(k.addrs(name), CompareOp::Equal, 0).with_prefix(),
                ];
                let ops = vec![
                    TxnOp::delete(k.net(name), None),
                    TxnOp::delete(k.data(name), Some(DeleteOptions::new().with_prefix())),
                ];
                if self.catalog_txn("delete a network", compares, ops).await? {
                    self.lock_slices().remove(name);
                    return Ok(Left::Deleted);
                }
                continue;
            }
            if let Some(n) = held.get(&self.host) {
                return Err(Error::new(
                    ErrorKind::Busy,
                    format!(
                        "network `{name}`: this host (`{}`) still holds {n} leases in it: release \
                         them (or gc_host) before leaving it (hosts {} keep using it)",
                        self.host,
                        others.join(", ")
                    ),
                ));
            }
            let mut compares = vec![catalog];
            let mut ops = vec![TxnOp::delete(k.member(name, &self.host), None)];
            // This host's slices go back to the pool: it holds no lease in them any more.
            let slice_prefix = k.slices(name);
            for kv in get_kvs(&got[3]) {
                let first: IpAddr =
                    codec::suffix(kv.key(), &slice_prefix)?
                        .parse()
                        .map_err(|_| {
                            codec::corrupt(kv.key(), "the key does not end in an IP address")
                        })?;
                if slices::decode(kv.key(), first, kv.value())?.host == self.host {
                    compares.push(Compare::mod_revision(
                        kv.key(),
                        CompareOp::Equal,
                        kv.mod_revision(),
                    ));
                    ops.push(TxnOp::delete(kv.key(), None));
                }
            }
            if ops.len() > self.max_txn_ops || compares.len() > self.max_txn_ops {
                return Err(Error::invalid(format!(
                    "network `{name}`: this host holds more slices than etcd takes in one \
                     transaction: free them with gc_slices first"
                )));
            }
            if self.catalog_txn("leave a network", compares, ops).await? {
                self.lock_slices().remove(name);
                return Ok(Left::Kept(others));
            }
        }
    }
}

/// The error for deleting a network (its last member leaving) while leases are left.
fn leases_block_delete(name: &str, held: &BTreeMap<String, usize>) -> Error {
    let per_host: Vec<String> = held
        .iter()
        .map(|(h, n)| format!("{n} of host `{h}`"))
        .collect();
    Error::new(
        ErrorKind::Busy,
        format!(
            "network `{name}` still holds leases in the etcd store ({}) and no other host uses \
             it: release them (or gc) before deleting it",
            per_host.join(", ")
        ),
    )
}
