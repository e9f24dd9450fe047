// Placeholder replaced by the protocol work: hot-path codec benchmarks.
fn main() {}
