//! Announcing many addresses at once (`Netns::announce`): a host moving 400 addresses, say.
//! Needs root; runs in namespaces it makes and deletes. `cargo bench -p underlay --bench
//! announce [-- N...]` (default 400 addresses: 300 IPv4, 100 IPv6).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use underlay::{AddressOptions, Handle, Netns, Veth};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("announce bench: needs root (CAP_NET_ADMIN); skipped");
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![400] } else { sizes };
    let (a, b) = (
        format!("ulb-ann-a-{}", std::process::id()),
        format!("ulb-ann-b-{}", std::process::id()),
    );
    let ns_a = Netns::create(&a).expect("namespace");
    let ns_b = Netns::create(&b).expect("namespace");
    let h = Handle::for_netns(&ns_a).await.expect("handle");
    let v0 = Veth::create(&h, "v0", "v1")
        .peer_netns(&ns_b)
        .up()
        .peer_up()
        .execute()
        .await
        .expect("veth");
    let nodad = AddressOptions {
        nodad: true,
        noprefixroute: false,
    };
    h.add_address_with("v0", "fd79::1/64".parse().unwrap(), nodad)
        .await
        .expect("address");
    println!("| addresses | calls | ms per call (median) | µs per address |");
    println!("|---|---|---|---|");
    for &n in &sizes {
        let ips: Vec<IpAddr> = (0..n)
            .map(|i| {
                if i % 4 == 3 {
                    IpAddr::V6(Ipv6Addr::from(0xfd79_u128 << 112 | 0x1000 | i as u128))
                } else {
                    IpAddr::V4(Ipv4Addr::from(0x0a4f_0000 + i as u32))
                }
            })
            .collect();
        let mut times = Vec::new();
        for _ in 0..11 {
            let t = Instant::now();
            ns_a.announce(v0.index, v0.mac.unwrap(), ips.clone())
                .expect("announce");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|x, y| x.partial_cmp(y).unwrap());
        let median = times[times.len() / 2];
        println!(
            "| {n} | {} | {median:.2} | {:.1} |",
            times.len(),
            median * 1000.0 / n as f64
        );
    }
    drop(h);
    for name in [&a, &b] {
        if let Err(e) = Netns::delete(name) {
            eprintln!("cleanup of {name} failed: {e}");
        }
    }
}
