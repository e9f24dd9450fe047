//! ZooKeeper-style coordinator for Ringtail.
