package io.lakeless.common;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;

/**
 * The shared test vectors of tests/vectors (what both Python and the JVM check), for tests: the
 * folder is {@code -Dlakeless.vectors=DIR}, else found upwards from the working directory.
 */
public final class Vectors {
  private Vectors() {}

  public static Path dir() {
    String explicit = System.getProperty("lakeless.vectors");
    if (explicit != null) {
      return Path.of(explicit);
    }
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      Path candidate = p.resolve("tests/vectors");
      if (Files.isRegularFile(candidate.resolve("registry.json"))) {
        return candidate;
      }
    }
    throw new IllegalStateException("tests/vectors not found: set -Dlakeless.vectors");
  }

  public static JsonNode read(String file) {
    try {
      return PipelineSchema.JSON.readTree(dir().resolve(file).toFile());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static byte[] hex(String hex) {
    return HexFormat.of().parseHex(hex);
  }

  public static byte[] base64(String b64) {
    return Base64.getDecoder().decode(b64);
  }

  /** The pipeline {@code name} with every version schemas.json registers for it. */
  public static Pipeline pipeline(String name) {
    SchemaRegistry registry = new SchemaRegistry();
    for (JsonNode s : read("schemas.json").path("schemas")) {
      registry.apply(s.path("registry_record").path("value").toString().getBytes(
          java.nio.charset.StandardCharsets.UTF_8), "schemas.json");
    }
    return registry.pipeline(name);
  }

  /** The registry record with this id in registry.json, decoded. */
  public static RegistryEntry entry(String id) {
    return RegistryEntry.decode(base64(read("registry.json").path("entries").path(id).asText()));
  }

  /** The registry record with this id as raw msgpack bytes. */
  public static byte[] entryBytes(String id) {
    return base64(read("registry.json").path("entries").path(id).asText());
  }

  public static List<String> strings(JsonNode array) {
    List<String> out = new ArrayList<>();
    array.forEach(n -> out.add(n.asText()));
    return out;
  }
}
