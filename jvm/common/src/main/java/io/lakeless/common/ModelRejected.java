package io.lakeless.common;

/** A registered model a scorer must not use; {@link #reason()} is the contract's reason code. */
public final class ModelRejected extends Exception {
  private final String reason;

  public ModelRejected(String reason, String detail) {
    super(detail);
    this.reason = reason;
  }

  public ModelRejected(String reason, String detail, Throwable cause) {
    super(detail, cause);
    this.reason = reason;
  }

  /** format_version, threshold, features, normalization, missing_bytes, checksum or onnx. */
  public String reason() {
    return reason;
  }

  @Override
  public String toString() {
    return reason + ": " + getMessage();
  }
}
