package io.lakeless.common;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The live version of one model, from registry records fed in offset order: {@link #update()}
 * loads and validates a newly promoted version, and the scoring thread's {@link #maybePoll()}
 * swaps to it between two records or batches (so the old session is closed by the thread that
 * used it); a refused version is logged with its reason and the current model keeps scoring (it
 * is tried again only if promoted again). {@link #start()} takes the live version, or, when that
 * one is refused, the newest version that was live before it and passes validation. Feeding and
 * {@link #update()} may run on another thread than scoring.
 */
public class ModelTracker implements ModelSource {
  private static final Logger LOG = LoggerFactory.getLogger(ModelTracker.class);

  private final String name;
  private final String pipeline;
  private final List<String> available;
  private final RegistryState state = new RegistryState();
  private final Map<Integer, ModelRejected> refused = new LinkedHashMap<>();
  private int promotionsSeen;
  private int candidate = -1;
  private LiveModel current;
  private volatile LiveModel pending;

  /**
   * @param name the model to follow
   * @param pipeline the pipeline the caller scores (a model of another is refused), or null
   * @param available the caller's columns (the pipeline's current features), in order
   */
  public ModelTracker(String name, String pipeline, List<String> available) {
    this.name = name;
    this.pipeline = pipeline;
    this.available = List.copyOf(available);
  }

  /** Fold one record value read at {@code where} (topic[0]@offset). */
  public synchronized void apply(byte[] value, String where) {
    try {
      state.apply(RegistryEntry.decode(value), where);
    } catch (IllegalArgumentException e) {
      LOG.warn("skipping {}: {}", where, e.getMessage());
    }
  }

  /** After the catch-up: load the live version (or fall back, see the class comment). */
  public synchronized void start() {
    List<Integer> history = state.liveHistory(name);
    promotionsSeen = history.size();
    Integer live = state.liveVersion(name);
    if (live == null) {
      LOG.info("model {} has no live version yet", name);
      return;
    }
    if (tryLoad(live)) {
      swap();
      return;
    }
    for (int i = history.size() - 1; i >= 0; i--) {
      int version = history.get(i);
      if (version != live && !refused.containsKey(version) && tryLoad(version)) {
        swap();
        LOG.warn("model {}: live v{} refused, scoring with v{}, the newest valid version live before it",
            name, live, version);
        return;
      }
    }
  }

  /**
   * Load and validate a version promoted since the last call (the swap happens in
   * {@link #maybePoll()}); true when one is waiting to be swapped in.
   */
  public synchronized boolean update() {
    List<Integer> history = state.liveHistory(name);
    if (history.size() == promotionsSeen) {
      return false;
    }
    promotionsSeen = history.size();
    Integer live = state.liveVersion(name);
    if (live == null || live == candidate) {
      return false;
    }
    return tryLoad(live);
  }

  private boolean tryLoad(int version) {
    RegistryEntry.Model record = state.model(name, version);
    int keeping = candidate;
    try {
      LiveModel next = ModelValidator.load(record, pipeline, available);
      LiveModel old = pending;
      pending = next;
      candidate = version;
      refused.remove(version);
      if (old != null) {
        old.close();
      }
      return true;
    } catch (ModelRejected e) {
      refused.put(version, e);
      LOG.error("refused model {} v{}: {}: {}{}", name, version, e.reason(), e.getMessage(),
          keeping < 0 ? "" : " (keeping v" + keeping + ")");
      return false;
    }
  }

  /** On the scoring thread: take in a validated new version; true when swapped. */
  protected final synchronized boolean swap() {
    LiveModel next = pending;
    if (next == null) {
      return false;
    }
    pending = null;
    LiveModel old = current;
    current = next;
    if (old != null) {
      old.close();
    }
    LOG.info("scoring with model {} v{}", name, next.version());
    return true;
  }

  /** Whether {@link #swap()} has something to do (a volatile read: cheap per record). */
  protected final boolean swapPending() {
    return pending != null;
  }

  @Override
  public boolean maybePoll() {
    update();
    return swap();
  }

  @Override
  public LiveModel current() {
    return current;
  }

  public Map<Integer, ModelRejected> refused() {
    return refused;
  }

  public RegistryState state() {
    return state;
  }

  public String name() {
    return name;
  }

  @Override
  public synchronized void close() {
    for (LiveModel m : new LiveModel[] {current, pending}) {
      if (m != null) {
        m.close();
      }
    }
    current = null;
    pending = null;
  }
}
