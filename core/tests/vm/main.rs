//! Kernel tests that need 8021q and ipvlan, which the development and CI hosts' kernel lacks (and
//! cannot load). When the running kernel lacks them, this binary boots itself once in a qemu VM
//! with Debian's stock kernel (`xtask::vm`, see docs/vm-tests.md) and reports what the run
//! inside reports; on a kernel that has them, or inside the VM, it runs the tests directly.
//!
//! Adding a test: write `fn name() -> Check` and add one line to [`TESTS`]. Every test works
//! only in namespaces it makes itself ([`TestNs`]), with veth pairs as parent NICs.

mod library;
mod support;

use std::process;

use libtest_mimic::{Arguments, Trial};
use support::{expect_eq, Check, TestNs};

/// A test: its name and its function.
type Test = (&'static str, fn() -> Check);

/// The tests.
const TESTS: &[Test] = &[
    ("vlan_smoke", vlan_smoke),
    ("ipvlan_smoke", ipvlan_smoke),
    ("vlan_data_path", vlan_data_path),
    ("library_vlan", library::library_vlan),
    ("library_vlan_qos", library::library_vlan_qos),
    ("library_ipvlan", library::library_ipvlan),
    (
        "library_bridge_and_dummy",
        library::library_bridge_and_dummy,
    ),
    (
        "network_vlan_parent_lifetime",
        library::network_vlan_parent_lifetime,
    ),
    ("network_ipvlan", library::network_ipvlan),
];

fn main() {
    let args = Arguments::from_args();
    let trials = |ignore_all: bool| -> Vec<Trial> {
        TESTS
            .iter()
            .map(|&(name, test)| {
                Trial::test(name, move || test().map_err(Into::into)).with_ignored_flag(ignore_all)
            })
            .collect()
    };
    // No VM for `--list` or for filters that select nothing.
    let runs_some = trials(false)
        .iter()
        .any(|t| !args.is_filtered_out(t) && !args.is_ignored(t));
    let mut ignore_all = false;
    if runs_some && !args.list && !xtask::vm::in_vm() {
        if !support::is_root() {
            eprintln!(
                "SKIPPED: the vm tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); CI runs them as root"
            );
            ignore_all = true;
        } else {
            match support::missing_kernel_features() {
                Ok(missing) if missing.is_empty() => {}
                Ok(missing) => process::exit(run_in_vm(&missing)),
                Err(e) => {
                    eprintln!("vm tests: cannot probe the kernel's features: {e}");
                    process::exit(101);
                }
            }
        }
    }
    libtest_mimic::run(&args, trials(ignore_all)).exit();
}

/// Boots the VM and runs this binary, with the same arguments, inside it.
fn run_in_vm(missing: &[&str]) -> i32 {
    eprintln!(
        "kernel lacks {}: running this test binary in a qemu VM with Debian's kernel",
        missing.join("/")
    );
    let outcome = xtask::vm::prepare().and_then(|vm| xtask::vm::run_self_in_vm(&vm));
    outcome.unwrap_or_else(|e| {
        eprintln!("vm tests: the VM failed: {e}");
        101
    })
}

/// VLAN 10 on a veth: the kernel reports kind `vlan` and id 10.
fn vlan_smoke() -> Check {
    let ns = TestNs::with_veth("vlan", "v0", "v1")?;
    ns.ip(&[
        "link", "add", "link", "v0", "name", "v0.10", "type", "vlan", "id", "10",
    ])?;
    let link = ns.link("v0.10")?;
    expect_eq("info_kind", &link["linkinfo"]["info_kind"], "vlan")?;
    expect_eq("VLAN id", &link["linkinfo"]["info_data"]["id"], 10)?;
    expect_eq("parent", &link["link"], "v0")
}

/// ipvlan in mode l2; then a second one in mode l3 on the same parent. The mode belongs to the
/// parent's ipvlan port, not to each ipvlan: the second creation switches the first to l3 (and
/// l3 sets NOARP on it), as Debian's 6.1 shows.
fn ipvlan_smoke() -> Check {
    let ns = TestNs::with_veth("ipvlan", "v0", "v1")?;
    ns.ip(&[
        "link", "add", "link", "v0", "name", "ipv0", "type", "ipvlan", "mode", "l2",
    ])?;
    let first = ns.link("ipv0")?;
    expect_eq("info_kind", &first["linkinfo"]["info_kind"], "ipvlan")?;
    expect_eq("ipv0 mode", &first["linkinfo"]["info_data"]["mode"], "l2")?;
    expect_eq("parent", &first["link"], "v0")?;

    ns.ip(&[
        "link", "add", "link", "v0", "name", "ipv1", "type", "ipvlan", "mode", "l3",
    ])?;
    let second = ns.link("ipv1")?;
    expect_eq("ipv1 mode", &second["linkinfo"]["info_data"]["mode"], "l3")?;
    let first = ns.link("ipv0")?;
    expect_eq(
        "ipv0 mode after an l3 ipvlan joined the same parent",
        &first["linkinfo"]["info_data"]["mode"],
        "l3",
    )?;
    let noarp = first["flags"]
        .as_array()
        .is_some_and(|flags| flags.iter().any(|f| f == "NOARP"));
    if !noarp {
        return Err(format!(
            "ipv0 in l3 mode should be NOARP: {}",
            first["flags"]
        ));
    }
    Ok(())
}

/// Two hosts joined by a veth trunk, VLANs 10 and 20 on each end, a bridge-mode macvlan per
/// container on its VLAN: same-VLAN containers reach each other across the trunk, other VLANs
/// do not (not even with an address in their subnet: tagged frames stay in their VLAN).
fn vlan_data_path() -> Check {
    let hosts = [TestNs::new("host1")?, TestNs::new("host2")?];
    hosts[0].ip(&[
        "link",
        "add",
        "trunk",
        "type",
        "veth",
        "peer",
        "name",
        "trunk",
        "netns",
        &hosts[1].name,
    ])?;
    for host in &hosts {
        host.ip(&["link", "set", "trunk", "up"])?;
        for vid in ["10", "20"] {
            let vlan = format!("trunk.{vid}");
            host.ip(&[
                "link", "add", "link", "trunk", "name", &vlan, "type", "vlan", "id", vid,
            ])?;
            host.ip(&["link", "set", &vlan, "up"])?;
        }
    }
    // (host, VLAN, address)
    let plan = [
        (0, "10", "172.16.10.101"),
        (1, "10", "172.16.10.102"),
        (0, "20", "172.16.20.201"),
        (1, "20", "172.16.20.202"),
    ];
    let mut containers = Vec::new();
    for (host, vid, addr) in plan {
        let container = TestNs::new(&format!("c{vid}"))?;
        let host = &hosts[host];
        let eth = format!("mv{vid}");
        host.ip(&[
            "link",
            "add",
            "link",
            &format!("trunk.{vid}"),
            "name",
            &eth,
            "type",
            "macvlan",
            "mode",
            "bridge",
        ])?;
        host.ip(&["link", "set", &eth, "netns", &container.name])?;
        container.ip(&["addr", "add", &format!("{addr}/24"), "dev", &eth])?;
        container.ip(&["link", "set", &eth, "up"])?;
        containers.push(container);
    }
    let [c101, c102, c201, c202] = &containers[..] else {
        unreachable!("four containers");
    };

    for (from, to) in [
        (c101, "172.16.10.102"),
        (c102, "172.16.10.101"),
        (c201, "172.16.20.202"),
        (c202, "172.16.20.201"),
    ] {
        // A lost first echo (ARP under emulation) is not what this test is about: retry twice.
        let mut ok = false;
        for _ in 0..3 {
            ok = from.pings(to)?;
            if ok {
                break;
            }
        }
        if !ok {
            return Err(format!("{} cannot ping {to} on the same VLAN", from.name));
        }
    }
    for (from, to) in [(c101, "172.16.20.202"), (c201, "172.16.10.102")] {
        if from.pings(to)? {
            return Err(format!("{} pings {to} on another VLAN", from.name));
        }
    }
    // With an address in VLAN 20's subnet, VLAN 10's container still cannot reach VLAN 20.
    c101.ip(&["addr", "add", "172.16.20.203/24", "dev", "mv10"])?;
    if c101.pings("172.16.20.202")? {
        return Err("VLAN 10 reaches VLAN 20 across the trunk".into());
    }
    Ok(())
}
