// Placeholder crate root: this manifest only pins rdkafka-sys for its source.
