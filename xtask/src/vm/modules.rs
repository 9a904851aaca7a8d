//! Which kernel modules the VM loads, and in which order: resolved from `modules.dep`.

use std::collections::{HashMap, HashSet};
use std::io;

/// Modules the guest loads at boot, with their parameters. Dependencies come from
/// `modules.dep`; modules built into the kernel (`modules.builtin`) are skipped.
pub(crate) const WANTED: &[(&str, &str)] = &[
    // Sharing the host's root: virtio PCI transport, 9p over virtio, an overlay on top.
    ("virtio_pci", ""),
    ("9pnet_virtio", ""),
    ("9p", ""),
    ("overlay", ""),
    // What the tests exercise. No device is created at load time: tests make their own.
    ("8021q", ""),
    ("ipvlan", ""),
    ("macvlan", ""),
    ("macvtap", ""),
    ("tap", ""),
    ("vxlan", ""),
    ("veth", ""),
    ("bridge", ""),
    ("tun", ""),
    ("dummy", "numdummies=0"),
    ("bonding", "max_bonds=0"),
];

/// A module to load: its path relative to `/lib/modules/<version>` and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Module {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) params: String,
}

/// The module name of a path in `modules.dep`: `kernel/net/802/garp.ko` -> `garp`; dashes and
/// underscores are the same to the kernel.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// Resolves `wanted` against `modules.dep` (and `modules.builtin`) into a load order where
/// every module comes after its dependencies.
pub(crate) fn load_order(
    modules_dep: &str,
    modules_builtin: &str,
    wanted: &[(&str, &str)],
) -> io::Result<Vec<Module>> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in modules_dep.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let needs = rest.split_whitespace().map(module_name).collect();
        deps.insert(module_name(path), (path.to_string(), needs));
    }
    let builtin: HashSet<String> = modules_builtin.lines().map(module_name).collect();
    let params: HashMap<String, &str> = wanted
        .iter()
        .map(|(name, params)| (module_name(name), *params))
        .collect();

    let mut order = Vec::new();
    let mut done = HashSet::new();
    for (name, _) in wanted {
        visit(
            &module_name(name),
            &deps,
            &builtin,
            &params,
            &mut done,
            &mut order,
            0,
        )?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    deps: &HashMap<String, (String, Vec<String>)>,
    builtin: &HashSet<String>,
    params: &HashMap<String, &str>,
    done: &mut HashSet<String>,
    order: &mut Vec<Module>,
    depth: usize,
) -> io::Result<()> {
    if done.contains(name) || builtin.contains(name) {
        return Ok(());
    }
    if depth > 64 {
        return Err(io::Error::other(format!(
            "modules.dep: dependency cycle through {name}"
        )));
    }
    let Some((path, needs)) = deps.get(name) else {
        return Err(io::Error::other(format!(
            "kernel module {name} is neither in modules.dep nor built in"
        )));
    };
    // modules.dep lists the dependencies of a module in reverse load order already, but each of
    // them is visited recursively anyway: the order then holds whatever the listing order.
    for need in needs.iter().rev() {
        visit(need, deps, builtin, params, done, order, depth + 1)?;
    }
    done.insert(name.to_string());
    order.push(Module {
        name: name.to_string(),
        path: path.clone(),
        params: params.get(name).copied().unwrap_or("").to_string(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/net/8021q/8021q.ko: kernel/net/802/garp.ko kernel/net/802/stp.ko kernel/net/802/mrp.ko kernel/net/llc/llc.ko
kernel/net/802/garp.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/802/mrp.ko:
kernel/net/llc/llc.ko:
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/drivers/net/dummy.ko:
kernel/drivers/net/ip6_udp-tunnel.ko:
";

    #[test]
    fn dependencies_come_first_and_once() {
        let order = load_order(
            DEP,
            "kernel/net/ipv6/ipv6.ko\n",
            &[
                ("8021q", ""),
                ("bridge", ""),
                ("dummy", "numdummies=0"),
                ("ipv6", ""),
                ("ip6_udp_tunnel", ""),
            ],
        )
        .unwrap();
        let names: Vec<&str> = order.iter().map(|m| m.name.as_str()).collect();
        let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
        assert_eq!(names.len(), 8, "{names:?}");
        assert!(!names.contains(&"ipv6"), "built in: {names:?}");
        for (module, dep) in [
            ("8021q", "garp"),
            ("8021q", "mrp"),
            ("garp", "stp"),
            ("stp", "llc"),
            ("bridge", "stp"),
        ] {
            assert!(at(dep) < at(module), "{dep} before {module}: {names:?}");
        }
        assert_eq!(&names[6..], ["dummy", "ip6_udp_tunnel"]);
        assert_eq!(order[6].params, "numdummies=0");
        assert_eq!(order[7].path, "kernel/drivers/net/ip6_udp-tunnel.ko");
    }

    #[test]
    fn unknown_module_is_an_error() {
        let err = load_order(DEP, "", &[("ipvlan", "")]).unwrap_err();
        assert!(err.to_string().contains("ipvlan"), "{err}");
    }
}
