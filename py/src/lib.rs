//! Python bindings for underlay. The PyO3 module arrives with the Python issue.

pub use underlay::VERSION;
