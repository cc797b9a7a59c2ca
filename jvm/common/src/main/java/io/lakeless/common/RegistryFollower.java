package io.lakeless.common;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link ModelTracker} fed from lakeless.models: on creation it reads the whole log and loads
 * the live version; then a daemon thread follows the log's tail, loading and validating each
 * newly promoted version as it arrives, and the scoring thread's {@link #maybePoll()} (a volatile
 * read when nothing changed) swaps to it between two records or batches.
 */
public final class RegistryFollower extends ModelTracker {
  public static final String TOPIC = "lakeless.models";
  private static final Logger LOG = LoggerFactory.getLogger(RegistryFollower.class);

  private final String topic;
  private final KafkaConsumer<byte[], byte[]> consumer;
  private final Thread thread;
  private volatile boolean running = true;

  /**
   * @param kafka client settings (bootstrap.servers, security); group.id is not used
   * @param topic the registry topic (lakeless.models)
   * @param name the model to follow
   * @param pipeline the pipeline the caller scores (a model of another is refused), or null
   * @param available the caller's columns (the pipeline's current features), in order
   * @param timeout how long the initial catch-up may take
   * @param pollWait how long the follower thread's polls wait for new records
   */
  public RegistryFollower(Properties kafka, String topic, String name, String pipeline,
      List<String> available, Duration timeout, Duration pollWait) {
    super(name, pipeline, available);
    this.topic = topic;
    Properties props = new Properties();
    props.putAll(kafka);
    props.remove("group.id");
    props.put("enable.auto.commit", "false");
    props.putIfAbsent("client.id", "lakeless-registry-follower-" + name);
    props.putIfAbsent("max.partition.fetch.bytes", String.valueOf(64 << 20));
    props.putIfAbsent("fetch.max.bytes", String.valueOf(64 << 20));
    consumer = new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    TopicPartition partition = new TopicPartition(topic, 0);
    consumer.assign(List.of(partition));
    consumer.seekToBeginning(List.of(partition));
    long end = consumer.endOffsets(List.of(partition), timeout).get(partition);
    long deadline = System.nanoTime() + timeout.toNanos();
    while (consumer.position(partition, timeout) < end) {
      if (System.nanoTime() > deadline) {
        consumer.close();
        throw new IllegalStateException("catching up on " + topic + " took longer than " + timeout);
      }
      read(Duration.ofMillis(200));
    }
    start();
    thread = new Thread(() -> follow(pollWait), "lakeless-registry-follower-" + name);
    thread.setDaemon(true);
    thread.start();
  }

  /** Client settings from a bootstrap address and extra settings (security passthrough). */
  public static Properties client(String bootstrap, Map<String, String> extra) {
    Properties props = new Properties();
    props.putAll(extra);
    props.put("bootstrap.servers", bootstrap);
    return props;
  }

  private void read(Duration wait) {
    for (ConsumerRecord<byte[], byte[]> r : consumer.poll(wait)) {
      apply(r.value(), topic + "[0]@" + r.offset());
    }
  }

  private void follow(Duration wait) {
    try {
      while (running) {
        read(wait);
        update();
      }
    } catch (WakeupException e) {
      // close() stops the thread
    } catch (RuntimeException e) {
      LOG.error("following {} stopped: {}", topic, e.toString());
    } finally {
      consumer.close(Duration.ofSeconds(5));
    }
  }

  /** Swap to a version the follower thread validated; true when swapped. */
  @Override
  public boolean maybePoll() {
    return swapPending() && swap();
  }

  @Override
  public void close() {
    running = false;
    consumer.wakeup();
    try {
      thread.join(10_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    super.close();
  }
}
