//! Shared reservations: an address held for one owner by several holders (hosts) at once.
//!
//! A reservation is an ordinary lease of its owner (so no allocation ever takes the address)
//! plus the set of its holders. [`Store::hold`] adds a holder, claiming the address first if
//! it is free; [`Store::unhold`] removes one, and the last one's release frees the address.
//! On etcd the holders are a key per address changed in the same transaction as the claim or
//! the release; the single-host stores keep them in a file beside the network's leases
//! (`holds`), changed under a lock of its own: the claim is committed before its holder is
//! written, and the last holder is removed before the release, so a crash in between leaves
//! the address reserved with no holder (the next `unhold` of its owner frees it), never free
//! while someone holds it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::ipam::lease::{Owner, Record};

use super::{fsutil, Change, Store};

/// One shared reservation: the address, its owner, and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hold {
    /// The reserved address.
    pub addr: IpAddr,
    /// The owner its lease is recorded under (the same for every holder).
    pub owner: Owner,
    /// The holders (sorted); empty only for a reservation whose last holder's release was
    /// cut short (the next [`crate::ipam::Ipam::unhold`] of the owner frees it).
    pub holders: Vec<String>,
}

/// What [`crate::ipam::Ipam::unhold`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unheld {
    /// Other holders keep the reservation (their names): only this holder's hold is gone.
    Kept(Vec<String>),
    /// This was the last holder: the address is released (allocatable again).
    Released(IpAddr),
    /// The owner held nothing for this holder: nothing changed.
    NotHeld,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} held by {}",
            self.addr,
            self.owner,
            self.holders.join(",")
        )
    }
}

/// Validates a holder's name: 1 to 253 bytes without whitespace or control characters (a
/// host name fits).
pub(crate) fn check_holder(holder: &str) -> Result<()> {
    if holder.is_empty()
        || holder.len() > 253
        || holder.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid(format!(
            "holder `{}` of a shared reservation is invalid: give 1 to 253 bytes without \
             whitespace or control characters (e.g. the host's name)",
            holder.chars().take(64).collect::<String>().escape_debug()
        )));
    }
    Ok(())
}

/// The error for holding an address another owner leases.
pub(crate) fn taken(name: &str, addr: IpAddr, by: &Owner, want: &Owner) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!(
            "address {addr} in network `{name}` is leased by {by}, not {want}: it cannot be \
             reserved for {want}; release that lease first, or reserve another address"
        ),
    )
}

/// The error for holding a second address for one owner.
pub(crate) fn owner_elsewhere(name: &str, owner: &Owner, has: IpAddr, want: IpAddr) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "owner {owner} already leases {has} in network `{name}`, so it cannot reserve \
             {want} (one address per owner): unhold or release {has} first"
        ),
    )
}

/// `<owner> <holder>...`: the text of one reservation (an etcd value, a line of the file).
pub(crate) fn encode_entry(owner: &Owner, holders: &[String]) -> String {
    let mut s = owner.to_string();
    for h in holders {
        s.push(' ');
        s.push_str(h);
    }
    s
}

/// Reads [`encode_entry`]'s text back; `None` if it is not one.
pub(crate) fn decode_entry(text: &str) -> Option<(Owner, Vec<String>)> {
    let mut words = text.split(' ');
    let (id, ifname) = words.next()?.split_once('/')?;
    let owner = Owner::new(id, ifname).ok()?;
    let mut holders: Vec<String> = Vec::new();
    for w in words {
        check_holder(w).ok()?;
        holders.push(w.to_string());
    }
    holders.sort();
    holders.dedup();
    Some((owner, holders))
}

/// Where a single-host store keeps the holders of its network's reservations; the caller
/// holds the lock that serialises every hold and unhold of the network.
pub(crate) trait HoldsKeeper: Send {
    /// The reservations, by address.
    fn read(&mut self) -> Result<Entries>;
    /// Replaces them.
    fn write(&mut self, entries: &Entries) -> Result<()>;
}

/// The reservations of one network, by address: owner and holders.
pub(crate) type Entries = BTreeMap<IpAddr, (Owner, Vec<String>)>;

/// The file stores' keeper: a file in the network's directory (one line
/// `<ip> <owner> <holder>...` per reservation); [`HoldsFile::lock`] takes `.<file>.lock`
/// there.
#[derive(Debug)]
pub(crate) struct HoldsFile {
    dir: PathBuf,
    file: &'static str,
    durable: bool,
}

impl HoldsFile {
    /// The keeper of the network whose directory is `dir`, in file `file` there.
    pub(crate) fn new(dir: PathBuf, file: &'static str, durable: bool) -> HoldsFile {
        HoldsFile { dir, file, durable }
    }

    /// The lock serialising the network's holds and unholds (in every process).
    pub(crate) async fn lock(&self) -> Result<std::fs::File> {
        fsutil::lock_async(&self.dir.join(format!(".{}.lock", self.file))).await
    }
}

impl HoldsKeeper for HoldsFile {
    fn read(&mut self) -> Result<Entries> {
        let path = self.dir.join(self.file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Entries::new()),
            Err(e) => return Err(fsutil::io_err("read", &path, e)),
        };
        let mut out = Entries::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let parsed = line
                .split_once(' ')
                .and_then(|(ip, rest)| Some((ip.parse::<IpAddr>().ok()?, decode_entry(rest)?)));
            let Some((ip, entry)) = parsed else {
                return Err(corrupt(&path, line));
            };
            out.insert(ip, entry);
        }
        Ok(out)
    }

    fn write(&mut self, entries: &Entries) -> Result<()> {
        let mut text = String::new();
        for (ip, (owner, holders)) in entries {
            text.push_str(&format!("{ip} {}\n", encode_entry(owner, holders)));
        }
        fsutil::replace(&self.dir, self.file, text.as_bytes(), self.durable)
    }
}

/// The in-memory store's keeper: its map, borrowed under its lock.
pub(crate) struct HoldsInMemory<'a>(pub(crate) &'a mut Entries);

impl HoldsKeeper for HoldsInMemory<'_> {
    fn read(&mut self) -> Result<Entries> {
        Ok(self.0.clone())
    }

    fn write(&mut self, entries: &Entries) -> Result<()> {
        *self.0 = entries.clone();
        Ok(())
    }
}

/// [`Store::hold`] of a single-host store, under the keeper's lock.
pub(crate) async fn hold_with(
    keeper: &mut dyn HoldsKeeper,
    store: &dyn Store,
    name: &str,
    record: &Record,
    holder: &str,
) -> Result<Hold> {
    check_holder(holder)?;
    let mut entries = keeper.read()?;
    claim_for(store, name, record).await?;
    let entry = entries
        .entry(record.addr)
        .or_insert_with(|| (record.owner.clone(), Vec::new()));
    if entry.0 != record.owner {
        // A stale line (its reservation released by hand): the lease decides.
        *entry = (record.owner.clone(), Vec::new());
    }
    if entry.1.iter().any(|h| h == holder) {
        return Ok(hold_of(record, entry.1.clone()));
    }
    entry.1.push(holder.to_string());
    entry.1.sort();
    let holders = entry.1.clone();
    keeper.write(&entries)?;
    Ok(hold_of(record, holders))
}

/// [`Store::unhold`] of a single-host store, under the keeper's lock.
pub(crate) async fn unhold_with(
    keeper: &mut dyn HoldsKeeper,
    store: &dyn Store,
    name: &str,
    owner: &Owner,
    holder: &str,
) -> Result<Unheld> {
    check_holder(holder)?;
    let mut entries = keeper.read()?;
    let at = entries
        .iter()
        .find(|(_, (o, _))| o == owner)
        .map(|(ip, (_, h))| (*ip, h.clone()));
    if let Some((ip, holders)) = &at {
        if !holders.is_empty() {
            if !holders.iter().any(|h| h == holder) {
                return Ok(Unheld::NotHeld);
            }
            let rest: Vec<String> = holders.iter().filter(|h| *h != holder).cloned().collect();
            if !rest.is_empty() {
                entries.insert(*ip, (owner.clone(), rest.clone()));
                keeper.write(&entries)?;
                return Ok(Unheld::Kept(rest));
            }
        }
        // The last holder: forget the holders first, then release (a crash between leaves
        // the address reserved, never free while held).
        entries.remove(ip);
        keeper.write(&entries)?;
    }
    Ok(match release_owner(store, name, owner).await? {
        Some(ip) => Unheld::Released(ip),
        None => Unheld::NotHeld,
    })
}

/// [`Store::holds`] of a single-host store: every reservation whose lease exists.
pub(crate) async fn holds_with(
    keeper: &mut dyn HoldsKeeper,
    store: &dyn Store,
    name: &str,
) -> Result<Vec<Hold>> {
    let entries = keeper.read()?;
    let records = store.load(name).await?.records;
    Ok(entries
        .into_iter()
        .filter(|(ip, (o, _))| records.iter().any(|r| r.addr == *ip && r.owner == *o))
        .map(|(addr, (owner, holders))| Hold {
            addr,
            owner,
            holders,
        })
        .collect())
}

fn hold_of(record: &Record, holders: Vec<String>) -> Hold {
    Hold {
        addr: record.addr,
        owner: record.owner.clone(),
        holders,
    }
}

fn corrupt(path: &Path, line: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!(
            "{}: the line `{}` is not `<ip> <owner> <holder>...`: restore the file from a \
             backup, or remove the line (that reservation then has no holder)",
            path.display(),
            line.chars().take(80).collect::<String>().escape_debug()
        ),
    )
}

/// Makes sure `record`'s owner leases its address: claims it if free (a versioned commit,
/// retried when the version moved), takes it as it is if the owner has it already.
async fn claim_for(store: &dyn Store, name: &str, record: &Record) -> Result<()> {
    loop {
        let snap = store.load(name).await?;
        if let Some(f) = snap.foreign.iter().find(|f| f.addr == record.addr) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "address {} in network `{name}` is leased by another tool ({}): it \
                     cannot be reserved; release it with that tool first",
                    f.addr, f.location
                ),
            ));
        }
        if let Some(r) = snap.records.iter().find(|r| r.addr == record.addr) {
            if r.owner != record.owner {
                return Err(taken(name, r.addr, &r.owner, &record.owner));
            }
            return Ok(());
        }
        if let Some(r) = snap.records.iter().find(|r| r.owner == record.owner) {
            return Err(owner_elsewhere(name, &r.owner, r.addr, record.addr));
        }
        match store
            .commit(name, snap.version, &[Change::Claim(record.clone())])
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Releases `owner`'s lease, if any; its address.
async fn release_owner(store: &dyn Store, name: &str, owner: &Owner) -> Result<Option<IpAddr>> {
    loop {
        let snap = store.load(name).await?;
        let Some(r) = snap.records.into_iter().find(|r| r.owner == *owner) else {
            return Ok(None);
        };
        match store
            .commit(name, snap.version, &[Change::Release(r.clone())])
            .await
        {
            Ok(_) => return Ok(Some(r.addr)),
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The [`Store`] methods of shared reservations for a file store with an async method
/// `holds_file(name) -> Result<HoldsFile>`.
macro_rules! file_holds_methods {
    () => {
        fn hold<'a>(
            &'a self,
            name: &'a str,
            record: &'a crate::ipam::lease::Record,
            holder: &'a str,
        ) -> StoreFuture<'a, super::holds::Hold> {
            Box::pin(async move {
                let mut keeper = self.holds_file(name).await?;
                let _lock = keeper.lock().await?;
                super::holds::hold_with(&mut keeper, self, name, record, holder).await
            })
        }

        fn unhold<'a>(
            &'a self,
            name: &'a str,
            owner: &'a crate::ipam::lease::Owner,
            holder: &'a str,
        ) -> StoreFuture<'a, super::holds::Unheld> {
            Box::pin(async move {
                let mut keeper = self.holds_file(name).await?;
                let _lock = keeper.lock().await?;
                super::holds::unhold_with(&mut keeper, self, name, owner, holder).await
            })
        }

        fn holds<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Vec<super::holds::Hold>> {
            Box::pin(async move {
                let mut keeper = self.holds_file(name).await?;
                let _lock = keeper.lock().await?;
                super::holds::holds_with(&mut keeper, self, name).await
            })
        }
    };
}
pub(crate) use file_holds_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_holders_are_checked() {
        let o = Owner::new("docker-gateway", "gw").unwrap();
        let text = encode_entry(&o, &["a".into(), "b.example".into()]);
        assert_eq!(text, "docker-gateway/gw a b.example");
        assert_eq!(
            decode_entry(&text),
            Some((o.clone(), vec!["a".to_string(), "b.example".to_string()]))
        );
        assert_eq!(decode_entry("docker-gateway/gw"), Some((o, Vec::new())));
        for bad in ["", "nouser", "a/b c\td"] {
            assert_eq!(decode_entry(bad), None, "{bad}");
        }
        for bad in ["", "has space", "tab\t", &"x".repeat(254)] {
            let e = check_holder(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().contains("holder"), "{e}");
        }
        check_holder("node-7.example").unwrap();
    }
}
