package dev.scoregate.bridge.shm;

import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.RemoteGateway;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * A session's models, in the gateway's index order: what a request's model name resolves to (the index written into
 * the slot) and what the output width is. Both {@code name} and {@code name@version} resolve. Immutable.
 */
final class ModelTable {

    /** One served model; {@code features == 0} marks one the ring cannot serve (not a single [batch, F] input). */
    record Model(int index, ModelId id, int features, int width, String signature) {
        RemoteGateway.Model describe() {
            return new RemoteGateway.Model(id, features, width, signature);
        }
    }

    private final List<Model> models;
    private final Map<ModelId, Model> byId = new HashMap<>();
    private final List<String> names;
    private final List<String> loaded;

    private ModelTable(List<Model> models) {
        this.models = List.copyOf(models);
        LinkedHashSet<String> distinct = new LinkedHashSet<>();
        List<String> ids = new ArrayList<>();
        for (Model m : this.models) {
            byId.put(m.id(), m);
            byId.putIfAbsent(new ModelId(m.id().name(), null), m);
            distinct.add(m.id().name());
            ids.add(m.id().toString());
        }
        this.names = List.copyOf(distinct);
        this.loaded = List.copyOf(ids);
    }

    /** From the {@code model} lines of a reply: index, name, version, features, width, signature. */
    static ModelTable parse(List<String> lines) {
        List<Model> models = new ArrayList<>();
        for (String line : lines) {
            String[] f = line.split("\t", 6);
            if (f.length < 6) {
                throw new IllegalStateException("malformed model line from the gateway: " + line);
            }
            models.add(new Model(Integer.parseInt(f[0]), new ModelId(f[1], f[2]), Integer.parseInt(f[3]),
                    Integer.parseInt(f[4]), f[5]));
        }
        return new ModelTable(models);
    }

    /** The model {@code id} resolves to, or null. */
    Model find(ModelId id) {
        return byId.get(id);
    }

    List<String> names() {
        return names;
    }

    /** One more than the largest model index: an array indexed by model index has this length. */
    int indexLimit() {
        return models.stream().mapToInt(Model::index).max().orElse(-1) + 1;
    }

    /** {@code name@version} of every model, for messages. */
    List<String> loaded() {
        return loaded;
    }

    List<RemoteGateway.Model> describe() {
        return models.stream().map(Model::describe).toList();
    }
}
