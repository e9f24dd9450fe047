//! Kafka wire protocol for Ringtail.
