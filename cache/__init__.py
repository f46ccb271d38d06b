"""Scoregate's feature side: feature specs, Hazelcast storage layout, hydration into score buffers,
ingestion and served-feature logging. Never imports ``gateway`` or ``jvm_bridge``."""
