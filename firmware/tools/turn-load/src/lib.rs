//! TURN load generator and media client for tests and benchmarks
