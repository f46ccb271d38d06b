package dev.scoregate.bridge.features;

import com.hazelcast.client.HazelcastClient;
import com.hazelcast.client.config.ClientConfig;
import com.hazelcast.client.config.ClientConnectionStrategyConfig.ReconnectMode;
import com.hazelcast.config.EvictionConfig;
import com.hazelcast.config.EvictionPolicy;
import com.hazelcast.config.InMemoryFormat;
import com.hazelcast.config.MaxSizePolicy;
import com.hazelcast.config.NearCacheConfig;
import com.hazelcast.core.HazelcastInstance;
import java.util.Collection;
import java.util.List;

/**
 * Hazelcast client configurations for reading the feature cache.
 *
 * <p>What {@link #config} sets, and why:
 * <ul>
 *   <li>a near cache (object format, invalidated on change) on each map in {@code nearCacheMaps}: the hot ad
 *       profiles are then read from local memory, {@code getAll} included, and a write anywhere invalidates them;</li>
 *   <li>reconnect mode {@code ASYNC}: while the cluster is unreachable, reads fail at once (and the reader serves
 *       defaults, flagged) instead of blocking until the client reconnects; it keeps reconnecting in the
 *       background;</li>
 *   <li>statistics off (no metrics sent to the cluster), the default (all-members) routing, so each key is read from its owner.</li>
 * </ul>
 * TLS and credentials are set on the returned {@link ClientConfig} by the caller; Hazelcast's open-source member
 * does not support either (they are Enterprise features).
 */
public final class FeatureClients {
    /** Entries the near cache of one map keeps (least-frequently-used out first). */
    public static final int DEFAULT_NEAR_CACHE_ENTRIES = 200_000;

    private FeatureClients() {
    }

    /** A client configuration for {@code clusterName} at {@code addresses} ("host:port"). */
    public static ClientConfig config(String clusterName, Collection<String> addresses,
                                      Collection<String> nearCacheMaps, int nearCacheEntries) {
        ClientConfig config = new ClientConfig();
        config.setClusterName(clusterName);
        config.getNetworkConfig().setAddresses(List.copyOf(addresses));
        config.getConnectionStrategyConfig().setReconnectMode(ReconnectMode.ASYNC);
        config.getConnectionStrategyConfig().getConnectionRetryConfig().setMaxBackoffMillis(2_000)
                .setClusterConnectTimeoutMillis(Long.MAX_VALUE);
        config.getMetricsConfig().setEnabled(false);
        config.setProperty("hazelcast.phone.home.enabled", "false");
        for (String map : nearCacheMaps) {
            NearCacheConfig near = new NearCacheConfig(map)
                    .setInMemoryFormat(InMemoryFormat.OBJECT)
                    .setInvalidateOnChange(true)
                    .setEvictionConfig(new EvictionConfig().setEvictionPolicy(EvictionPolicy.LFU)
                            .setMaxSizePolicy(MaxSizePolicy.ENTRY_COUNT).setSize(nearCacheEntries));
            config.addNearCacheConfig(near);
        }
        return config;
    }

    /** Connects a client with {@link #config}; blocks until it has joined the cluster. */
    public static HazelcastInstance connect(String clusterName, Collection<String> addresses,
                                            Collection<String> nearCacheMaps) {
        return HazelcastClient.newHazelcastClient(config(clusterName, addresses, nearCacheMaps,
                DEFAULT_NEAR_CACHE_ENTRIES));
    }
}
