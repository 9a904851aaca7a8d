//! IP address management: pools, allocation, and stores (in progress).
