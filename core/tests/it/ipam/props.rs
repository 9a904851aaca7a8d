//! Property tests: random allocate/release sequences against a model.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use underlay::ipam::{Ipam, LocalStore, Owner, Request};
use underlay::ErrorKind;

use super::{check, net, owner, TempDir};

const POOLS: &[&[&str]] = &[
    &["10.0.0.0/27 reserve=a=10.0.0.5 reserve=10.0.0.6"],
    &["10.0.0.0/24 gateway=none range=10.0.0.10-10.0.0.20 range=10.0.0.200/30 reserve=r=10.0.0.12"],
    &["fd00::/120 range=fd00::10-fd00::2f reserve=fd00::11"],
    &["10.0.0.0/28", "fd00::/125"],
];

#[derive(Debug, Clone)]
enum Op {
    Any(usize),
    Specific(usize, u8),
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..40usize).prop_map(Op::Any),
        1 => (0..40usize, any::<u8>()).prop_map(|(o, b)| Op::Specific(o, b)),
        3 => (0..40usize).prop_map(Op::Release),
    ]
}

async fn run(case: usize, ops: Vec<Op>) {
    let tmp = TempDir::new("prop");
    let store = Arc::new(LocalStore::open(tmp.path()).unwrap().durable(false));
    let ipam = Ipam::create(store, net("p", POOLS[case])).await.unwrap();
    let pools = ipam.network().pools().to_vec();
    let mut model: HashMap<Owner, Vec<IpAddr>> = HashMap::new();
    for op in ops {
        match op {
            Op::Any(o) | Op::Specific(o, _) => {
                let who = owner(o);
                let req = match op {
                    Op::Specific(_, b) => {
                        // An address of the first pool's subnet, often in its ranges.
                        let p = &pools[0];
                        let span = p.subnet().hosts().count().min(256) as u8;
                        let addr = p.subnet().hosts().nth((b % span.max(1)) as usize).unwrap();
                        Request::ip(addr)
                    }
                    _ => Request::any(),
                };
                let used: Vec<IpAddr> = model.values().flatten().copied().collect();
                match ipam.allocate(&who, &req).await {
                    Ok(l) => {
                        if let Some(held) = model.get(&who) {
                            assert_eq!(&l.ips(), held, "not idempotent");
                            continue;
                        }
                        for (i, a) in l.ips().into_iter().enumerate() {
                            assert!(!used.contains(&a), "{a} handed out twice");
                            assert!(pools[i].excluded_reason(a).is_none(), "{a} is excluded");
                            if !req.ips().contains(&a) {
                                assert!(pools[i].in_ranges(a), "{a} outside the ranges");
                            }
                        }
                        model.insert(who, l.ips());
                    }
                    Err(e) => match e.kind() {
                        ErrorKind::PoolExhausted => {
                            assert!(!model.contains_key(&who));
                            let full = pools.iter().any(|p| {
                                used.iter().filter(|a| p.in_ranges(**a)).count() as u128
                                    == p.capacity()
                            });
                            assert!(full, "exhausted while not full: {e}");
                        }
                        ErrorKind::AlreadyExists => {
                            assert!(used.contains(&req.ips()[0]), "{e}")
                        }
                        ErrorKind::InvalidArgument => {
                            assert!(pools[0].excluded_reason(req.ips()[0]).is_some(), "{e}")
                        }
                        ErrorKind::Conflict => assert!(model.contains_key(&who), "{e}"),
                        _ => panic!("unexpected error {e}"),
                    },
                }
            }
            Op::Release(o) => {
                let who = owner(o);
                let got = ipam.release(&who).await.unwrap();
                assert_eq!(got.map(|l| l.ips()), model.remove(&who));
            }
        }
    }
    let live: HashMap<Owner, Vec<IpAddr>> = ipam
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.owner.clone(), l.ips()))
        .collect();
    assert_eq!(live, model);
    check(&ipam).await;
    // Reload from disk with a fresh store object: the same state.
    let again = Ipam::open(Arc::new(LocalStore::open(tmp.path()).unwrap()), "p")
        .await
        .unwrap();
    assert_eq!(again.list().await.unwrap(), ipam.list().await.unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn random_allocate_release_sequences(case in 0..POOLS.len(), ops in prop::collection::vec(op(), 1..120)) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(case, ops));
    }
}
