package io.lakeless.common;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fold of the lakeless.models log in offset order: a model record adds (name, version) with
 * its registration stage (a duplicate is ignored: the lowest offset wins); a stage change of a
 * registered version sets its stage (one of an unknown version is ignored); promoting a version
 * to live archives the version that was live; moving the live version elsewhere leaves none.
 */
public final class RegistryState {
  private static final Logger LOG = LoggerFactory.getLogger(RegistryState.class);

  private final Map<String, RegistryEntry.Model> models = new LinkedHashMap<>();
  private final Map<String, String> stages = new HashMap<>();
  private final Map<String, Integer> live = new HashMap<>();
  private final Map<String, List<Integer>> liveHistory = new HashMap<>();

  private static String key(String name, int version) {
    return name + ":" + version;
  }

  public void apply(RegistryEntry entry, String where) {
    String key = key(entry.name(), entry.version());
    if (entry instanceof RegistryEntry.StageChange change) {
      if (!models.containsKey(key)) {
        LOG.warn("ignoring stage change of unknown model {} v{} to {} at {}", change.name(),
            change.version(), change.stage(), where);
        return;
      }
      setStage(change.name(), change.version(), change.stage());
      return;
    }
    RegistryEntry.Model model = (RegistryEntry.Model) entry;
    if (models.containsKey(key)) {
      LOG.warn("ignoring duplicate model {} v{} at {}", model.name(), model.version(), where);
      return;
    }
    models.put(key, model);
    stages.put(key, "candidate");
    setStage(model.name(), model.version(), model.stage() == null ? "candidate" : model.stage());
  }

  private void setStage(String name, int version, String stage) {
    Integer current = live.get(name);
    if ("live".equals(stage)) {
      if (current != null && current != version) {
        stages.put(key(name, current), "archived");
      }
      live.put(name, version);
      liveHistory.computeIfAbsent(name, n -> new ArrayList<>()).add(version);
    } else if (current != null && current == version) {
      live.remove(name);
    }
    stages.put(key(name, version), stage);
  }

  /** The live version of {@code name}, or null. */
  public Integer liveVersion(String name) {
    return live.get(name);
  }

  /** The versions of {@code name} in the order they became live (repeats allowed). */
  public List<Integer> liveHistory(String name) {
    return liveHistory.getOrDefault(name, List.of());
  }

  /** The current stage of a registered version, or null. */
  public String stage(String name, int version) {
    return stages.get(key(name, version));
  }

  /** The record of a registered version, or null. */
  public RegistryEntry.Model model(String name, int version) {
    return models.get(key(name, version));
  }
}
