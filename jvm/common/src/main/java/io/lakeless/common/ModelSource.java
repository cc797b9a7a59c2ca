package io.lakeless.common;

/** Where a scorer gets its model: {@link RegistryFollower} (Kafka) or a {@link ModelTracker}. */
public interface ModelSource extends AutoCloseable {
  /** The model scoring now, or null while none is live. */
  LiveModel current();

  /** Take in registry changes if it is time to; true when {@link #current()} changed. */
  boolean maybePoll();

  @Override
  void close();
}
