//! Render VLAN sub-interfaces for the distribution's own tools, for users who want them at boot
//! without underlay (they live only in the kernel otherwise and vanish on reboot).

use crate::types::{IfName, VlanId};

/// A target format for [`render_vlan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Debian ifupdown: a stanza for `/etc/network/interfaces` (needs the `vlan` package).
    Ifupdown,
    /// RHEL/Fedora network-scripts: `/etc/sysconfig/network-scripts/ifcfg-<name>`.
    Ifcfg,
    /// systemd-networkd: `.netdev` + `.network` for the VLAN, and a drop-in for the parent.
    Networkd,
}

impl std::str::FromStr for ExportFormat {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "ifupdown" | "interfaces" => Ok(ExportFormat::Ifupdown),
            "ifcfg" | "rhel" => Ok(ExportFormat::Ifcfg),
            "networkd" | "systemd-networkd" => Ok(ExportFormat::Networkd),
            _ => Err(crate::Error::invalid(format!(
                "export format `{s}` is unknown: use ifupdown, ifcfg or networkd"
            ))),
        }
    }
}

/// One file to write: its path on a standard system, and its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFile {
    /// Where the distribution reads it.
    pub path: String,
    /// What to put there.
    pub content: String,
}

/// Renders VLAN `id` named `name` on `parent` (up at boot, no address: the containers' macvlans
/// sit on it) in `format`.
///
/// ```
/// use underlay::network::{render_vlan, ExportFormat};
/// let files = render_vlan(ExportFormat::Ifupdown, &"ens192.10".parse()?, &"ens192".parse()?, underlay::VlanId::new(10)?);
/// assert!(files[0].content.contains("vlan-raw-device ens192"));
/// # Ok::<(), underlay::Error>(())
/// ```
pub fn render_vlan(
    format: ExportFormat,
    name: &IfName,
    parent: &IfName,
    id: VlanId,
) -> Vec<ExportFile> {
    match format {
        ExportFormat::Ifupdown => vec![ExportFile {
            path: format!("/etc/network/interfaces.d/{name}"),
            content: format!(
                "# VLAN {id} on {parent}, written by underlay\nauto {name}\niface {name} inet manual\n    vlan-raw-device {parent}\n    vlan-id {id}\n"
            ),
        }],
        ExportFormat::Ifcfg => vec![ExportFile {
            path: format!("/etc/sysconfig/network-scripts/ifcfg-{name}"),
            content: format!(
                "# VLAN {id} on {parent}, written by underlay\nDEVICE={name}\nVLAN=yes\nPHYSDEV={parent}\nVLAN_ID={id}\nONBOOT=yes\nBOOTPROTO=none\n"
            ),
        }],
        ExportFormat::Networkd => vec![
            ExportFile {
                path: format!("/etc/systemd/network/20-{name}.netdev"),
                content: format!("# written by underlay\n[NetDev]\nName={name}\nKind=vlan\n\n[VLAN]\nId={id}\n"),
            },
            ExportFile {
                path: format!("/etc/systemd/network/20-{name}.network"),
                content: format!(
                    "# written by underlay\n[Match]\nName={name}\n\n[Network]\nLinkLocalAddressing=no\nConfigureWithoutCarrier=yes\n"
                ),
            },
            ExportFile {
                path: format!("/etc/systemd/network/10-{parent}.network.d/underlay-vlan-{id}.conf"),
                content: format!("# written by underlay: attach VLAN {id} to {parent}\n[Network]\nVLAN={name}\n"),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(f: ExportFormat) -> Vec<ExportFile> {
        render_vlan(
            f,
            &"ens192.10".parse().unwrap(),
            &"ens192".parse().unwrap(),
            VlanId::new(10).unwrap(),
        )
    }

    #[test]
    fn ifupdown() {
        let f = r(ExportFormat::Ifupdown);
        assert_eq!(f.len(), 1);
        assert!(f[0]
            .content
            .contains("auto ens192.10\niface ens192.10 inet manual\n    vlan-raw-device ens192\n"));
    }

    #[test]
    fn ifcfg() {
        let f = r(ExportFormat::Ifcfg);
        assert_eq!(f[0].path, "/etc/sysconfig/network-scripts/ifcfg-ens192.10");
        for line in [
            "DEVICE=ens192.10",
            "VLAN=yes",
            "PHYSDEV=ens192",
            "VLAN_ID=10",
            "ONBOOT=yes",
        ] {
            assert!(f[0].content.lines().any(|l| l == line), "{line}");
        }
    }

    #[test]
    fn networkd() {
        let f = r(ExportFormat::Networkd);
        assert_eq!(f.len(), 3);
        assert!(f[0].content.contains("Kind=vlan") && f[0].content.contains("Id=10"));
        assert!(f[2].content.contains("VLAN=ens192.10"));
        assert!("bogus".parse::<ExportFormat>().is_err());
    }
}
