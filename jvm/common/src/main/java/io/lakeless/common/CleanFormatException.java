package io.lakeless.common;

/** A NAME.clean value that this pipeline cannot decode; {@link #reason()} is a short code. */
public final class CleanFormatException extends RuntimeException {
  private final String reason;

  public CleanFormatException(String reason, String message) {
    super(message);
    this.reason = reason;
  }

  /** fingerprint, layout_version, truncated or trailing. */
  public String reason() {
    return reason;
  }
}
