//! VLAN QoS maps: set on a VLAN builder or an existing VLAN, read back from a link.

use std::os::raw::c_char;

use underlay::{LinkKind, Vlan, VlanQosMaps};

use crate::handle::underlay_handle;
use crate::link::{edit, underlay_link, underlay_link_builder, wrong_kind, AnyBuilder};
use crate::result::underlay_result;
use crate::support::{block, guard, guard_value, null, r, s, R};

/// One entry of a VLAN QoS map: ingress maps the tag's 802.1p priority `from` (0..7) to the
/// packet priority `to`; egress maps the packet priority `from` to the tag's `to` (0..7).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct underlay_vlan_qos_mapping {
    /// Priority mapped from.
    pub from: u32,
    /// Priority mapped to.
    pub to: u32,
}

/// The `count` entries at `p` (NULL allowed only for 0), checked before anything is read.
fn mappings(p: *const underlay_vlan_qos_mapping, count: usize, what: &str) -> R<Vec<(u32, u32)>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: `p` holds `count` entries (the caller's contract), checked non-NULL above.
    let list = unsafe { std::slice::from_raw_parts(p, count) };
    Ok(list.iter().map(|m| (m.from, m.to)).collect())
}

fn maps(
    ingress: *const underlay_vlan_qos_mapping,
    ingress_count: usize,
    egress: *const underlay_vlan_qos_mapping,
    egress_count: usize,
) -> R<VlanQosMaps> {
    Ok(VlanQosMaps {
        ingress: mappings(ingress, ingress_count, "ingress")?,
        egress: mappings(egress, egress_count, "egress")?,
    })
}

/// VLAN builders: the QoS maps set in the create request (`ingress_count` entries at
/// `ingress`, `egress_count` at `egress`; either may be NULL when its count is 0), replacing
/// any given before. Priorities outside 0..7 fail at execute with INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn underlay_link_builder_vlan_qos(
    builder: *mut underlay_link_builder,
    ingress: *const underlay_vlan_qos_mapping,
    ingress_count: usize,
    egress: *const underlay_vlan_qos_mapping,
    egress_count: usize,
) -> underlay_result {
    let mut parsed = None;
    let code = guard(|| {
        parsed = Some(maps(ingress, ingress_count, egress, egress_count)?);
        Ok(())
    });
    match parsed {
        Some(qos) => edit(builder, |b| match b {
            AnyBuilder::Vlan(x) => Ok(AnyBuilder::Vlan(x.qos(qos))),
            b => wrong_kind(b, "VLAN"),
        }),
        None => code,
    }
}

/// Adds or changes entries of the QoS maps of the existing VLAN `name` (entries not given
/// stay; one mapped to 0 is cleared). A link that is not a VLAN is INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn underlay_handle_vlan_set_qos(
    handle: *const underlay_handle,
    name: *const c_char,
    ingress: *const underlay_vlan_qos_mapping,
    ingress_count: usize,
    egress: *const underlay_vlan_qos_mapping,
    egress_count: usize,
) -> underlay_result {
    guard(|| {
        let h = r(handle, "handle")?;
        let n = s(name, "name")?;
        let qos = maps(ingress, ingress_count, egress, egress_count)?;
        block(Vlan::set_qos(&h.inner, n, &qos))
    })
}

/// Copies up to `capacity` entries of a map into `out` (NULL allowed when `capacity` is 0)
/// and returns how many the map has (0 for other kinds and for NULL).
fn copy_map(
    link: *const underlay_link,
    pick: impl Fn(&VlanQosMaps) -> &Vec<(u32, u32)>,
    out: *mut underlay_vlan_qos_mapping,
    capacity: usize,
) -> usize {
    guard_value(0, || {
        let Ok(l) = r(link, "link") else { return 0 };
        let LinkKind::Vlan { qos, .. } = &l.inner.kind else {
            return 0;
        };
        let map = pick(qos);
        if !out.is_null() {
            for (i, &(from, to)) in map.iter().take(capacity).enumerate() {
                // SAFETY: `out` has room for `capacity` entries (the caller's contract).
                unsafe { out.add(i).write(underlay_vlan_qos_mapping { from, to }) };
            }
        }
        map.len()
    })
}

/// A VLAN's ingress QoS map (the entries not mapped to 0): copies up to `capacity` entries
/// into `out` and returns how many there are (call with 0 to size `out`).
#[no_mangle]
pub extern "C" fn underlay_link_vlan_ingress_qos(
    link: *const underlay_link,
    out: *mut underlay_vlan_qos_mapping,
    capacity: usize,
) -> usize {
    copy_map(link, |q| &q.ingress, out, capacity)
}

/// A VLAN's egress QoS map, as `underlay_link_vlan_ingress_qos`.
#[no_mangle]
pub extern "C" fn underlay_link_vlan_egress_qos(
    link: *const underlay_link,
    out: *mut underlay_vlan_qos_mapping,
    capacity: usize,
) -> usize {
    copy_map(link, |q| &q.egress, out, capacity)
}
