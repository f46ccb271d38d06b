package dev.scoregate.bridge.shm;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The control replies' format: one {@code key<TAB>value} pair per line, keys repeatable ({@code bell},
 * {@code model}), the value the rest of the line. No JSON, so the API jar needs no parser library.
 */
final class ControlText {
    private final Map<String, List<String>> values;

    private ControlText(Map<String, List<String>> values) {
        this.values = values;
    }

    static ControlText parse(String text) {
        Map<String, List<String>> values = new LinkedHashMap<>();
        if (text != null) {
            for (String line : text.split("\n")) {
                int tab = line.indexOf('\t');
                String key = tab < 0 ? line : line.substring(0, tab);
                if (!key.isEmpty()) {
                    values.computeIfAbsent(key, k -> new ArrayList<>()).add(tab < 0 ? "" : line.substring(tab + 1));
                }
            }
        }
        return new ControlText(values);
    }

    /** The first value of {@code key}, or null. */
    String get(String key) {
        List<String> all = values.get(key);
        return all == null ? null : all.get(0);
    }

    /** The first value of {@code key}. */
    String require(String key) {
        String value = get(key);
        if (value == null) {
            throw new IllegalStateException("the gateway's reply lacks '" + key + "': " + values.keySet());
        }
        return value;
    }

    /** Every value of {@code key}, in order; empty if none. */
    List<String> all(String key) {
        return values.getOrDefault(key, List.of());
    }

    static String line(String key, Object value) {
        return key + "\t" + value + "\n";
    }
}
