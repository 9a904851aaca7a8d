//! The parent link of a network: VLAN sub-interfaces made on demand (Docker's `parent=ens192.10`
//! when `ens192.10` does not exist), marked in the kernel so the decision survives restarts.
//!
//! A VLAN underlay creates carries the alias `underlay:vlan users=N`; each network using it
//! counts once. The link is deleted with its last user, and never when underlay did not make it.
//! Callers hold the store lock around acquire/release, so counts do not race.

use crate::error::{Error, ErrorKind, Result};
use crate::handle::Handle;
use crate::link::vlan::Vlan;
use crate::link::Link;
use crate::types::{IfName, VlanId};

/// Alias prefix of VLAN parents underlay created.
pub(crate) const VLAN_MARK: &str = "underlay:vlan";

/// The user count in an underlay VLAN mark, `None` when the alias is not underlay's.
pub(crate) fn users_of(alias: Option<&str>) -> Option<u32> {
    let rest = alias?.strip_prefix(VLAN_MARK)?;
    let n = rest.trim().strip_prefix("users=")?;
    n.parse().ok()
}

fn mark(users: u32) -> String {
    format!("{VLAN_MARK} users={users}")
}

/// `ens192.10` -> (`ens192`, 10): the VLAN a parent name asks for, by the usual convention.
pub(crate) fn vlan_of(name: &str) -> Option<(IfName, VlanId)> {
    let (base, id) = name.rsplit_once('.')?;
    let id: u16 = id.parse().ok()?;
    Some((IfName::new(base).ok()?, VlanId::new(id).ok()?))
}

/// What [`acquire`] got: the parent, and the link it brought up (the parent, or the NIC a new
/// VLAN sits on), to be brought down again if the network is not made after all.
pub(crate) struct Acquired {
    pub(crate) link: Link,
    pub(crate) brought_up: Option<u32>,
}

/// Makes sure `name` exists and is up (creating the VLAN sub-interface when the name asks for
/// one), and counts one more user if underlay made it. `bring_up`: bring a down parent up
/// instead of failing. On failure, a link it brought up is down again.
pub(crate) async fn acquire(h: &Handle, name: &IfName, bring_up: bool) -> Result<Acquired> {
    match h.link(name).await {
        Ok(link) => {
            let users = users_of(link.alias.as_deref());
            ensure_up(h, &link, bring_up).await?;
            let brought_up = (!link.up).then_some(link.index);
            let counted = async {
                if let Some(n) = users {
                    h.set_link(link.index).alias(mark(n + 1)).execute().await?;
                }
                h.link(link.index).await
            };
            match counted.await {
                Ok(link) => Ok(Acquired { link, brought_up }),
                Err(e) => Err(put_down(h, brought_up, e).await),
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let Some((base, id)) = vlan_of(name.as_str()) else {
                return Err(Error::not_found(format!(
                    "parent `{name}` not found in {}: check the name (`ip link`), or name a VLAN as <nic>.<id> to have it created",
                    h.netns_label()
                ))
                .with_errno(libc::ENODEV));
            };
            let base_link = h.link(&base).await.map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Error::not_found(format!(
                        "parent `{name}` does not exist and neither does `{base}` to make VLAN {id} on: check the NIC's name (`ip link`)"
                    ))
                    .with_errno(libc::ENODEV)
                } else {
                    e
                }
            })?;
            ensure_up(h, &base_link, bring_up).await?;
            let brought_up = (!base_link.up).then_some(base_link.index);
            match Vlan::create(h, base_link.index, id)
                .name(name.as_str())
                .alias(mark(1))
                .up()
                .execute()
                .await
            {
                Ok(link) => Ok(Acquired { link, brought_up }),
                Err(e) => Err(put_down(h, brought_up, e).await),
            }
        }
        Err(e) => Err(e),
    }
}

/// Brings the link [`acquire`] brought up down again (nothing if it brought none up).
pub(crate) async fn bring_down(h: &Handle, brought_up: Option<u32>) -> Result<()> {
    match brought_up {
        Some(index) => h.set_link(index).down().execute().await,
        None => Ok(()),
    }
}

/// `err`, after bringing down what [`acquire`] brought up (and with that failure too).
async fn put_down(h: &Handle, brought_up: Option<u32>, err: Error) -> Error {
    match bring_down(h, brought_up).await {
        Ok(()) => err,
        Err(e2) => Error::multiple("and the link brought up for it is still up", vec![err, e2]),
    }
}

async fn ensure_up(h: &Handle, link: &Link, bring_up: bool) -> Result<()> {
    if link.up {
        return Ok(());
    }
    if !bring_up {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "parent `{}` is down in {}: bring it up (`ip link set {} up`) or ask underlay to (bring_parent_up)",
                link.name,
                h.netns_label(),
                link.name
            ),
        ));
    }
    h.set_link(link.index).up().execute().await
}

/// One user fewer; deletes the parent with its last user if underlay made it. A parent that is
/// already gone is fine.
pub(crate) async fn release(h: &Handle, name: &IfName) -> Result<()> {
    let link = match h.link(name).await {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    match users_of(link.alias.as_deref()) {
        None => Ok(()),
        Some(n) if n <= 1 => h.delete_link(link.index).await,
        Some(n) => h.set_link(link.index).alias(mark(n - 1)).execute().await,
    }
}

/// Recreates a missing VLAN parent with `users` users (for reconcile after a reboot).
pub(crate) async fn recreate(h: &Handle, name: &IfName, users: u32) -> Result<Option<Link>> {
    if h.link(name).await.is_ok() {
        return Ok(None);
    }
    let Some((base, id)) = vlan_of(name.as_str()) else {
        return Ok(None);
    };
    let link = Vlan::create(h, &base, id)
        .name(name.as_str())
        .alias(mark(users.max(1)))
        .up()
        .execute()
        .await?;
    Ok(Some(link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks() {
        assert_eq!(users_of(Some("underlay:vlan users=3")), Some(3));
        assert_eq!(users_of(Some("mine")), None);
        assert_eq!(users_of(None), None);
        assert_eq!(users_of(Some(&mark(7))), Some(7));
    }

    #[test]
    fn vlan_names() {
        let (b, id) = vlan_of("ens192.10").unwrap();
        assert_eq!((b.as_str(), id.get()), ("ens192", 10));
        assert!(vlan_of("ens192").is_none());
        assert!(vlan_of("ens192.0").is_none());
        assert!(vlan_of("ens192.5000").is_none());
        assert_eq!(vlan_of("bond0.100.20").unwrap().0.as_str(), "bond0.100");
    }
}
