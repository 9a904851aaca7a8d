//! Claims per second on etcd (stub, filled in below).
fn main() {}
