package io.lakeless.common;

/**
 * A decoded NAME.clean value in the reader schema's terms: features in the reader's feature
 * order, strings in the reader's string order (key, context fields, label), null for null.
 */
public record CleanRecord(
    int writerVersion, long time, Long sequence, double[] features, String[] strings) {
  public String key() {
    return strings[0];
  }
}
