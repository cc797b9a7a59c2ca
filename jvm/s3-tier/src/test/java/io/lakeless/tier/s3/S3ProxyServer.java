package io.lakeless.tier.s3;

import java.io.IOException;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * A real s3proxy (filesystem backend) as a child process on a free loopback port; the jar comes
 * from Maven ({@code target/s3proxy/s3proxy.jar}, system property {@code s3proxy.jar}).
 */
final class S3ProxyServer implements AutoCloseable {
    final Path dir;
    final int port;
    final String identity = "lakeless-test";
    final String credential = UUID.randomUUID().toString();
    private Process process;

    S3ProxyServer(Path dir) throws IOException {
        this.dir = dir;
        this.port = freePort();
        Files.createDirectories(dir.resolve("data"));
        Files.writeString(dir.resolve("s3proxy.conf"), String.join("\n",
            "s3proxy.endpoint=http://127.0.0.1:" + port,
            "s3proxy.authorization=aws-v2-or-v4",
            "s3proxy.identity=" + identity,
            "s3proxy.credential=" + credential,
            "jclouds.provider=filesystem",
            "jclouds.filesystem.basedir=" + dir.resolve("data"),
            ""));
    }

    String endpoint() {
        return "http://127.0.0.1:" + port;
    }

    /** Start (again, on the same port and data) and wait until it answers HTTP. */
    S3ProxyServer start() throws IOException, InterruptedException {
        String jar = System.getProperty("s3proxy.jar");
        if (jar == null || !Files.exists(Path.of(jar))) {
            throw new IllegalStateException("s3proxy jar not found (system property s3proxy.jar=" + jar + ")");
        }
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        process = new ProcessBuilder(java, "-Xmx256m", "-DLOG_LEVEL=warn", "-jar", jar,
            "--properties", dir.resolve("s3proxy.conf").toString())
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("s3proxy.log").toFile()))
            .start();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!answers()) {
            if (!process.isAlive()) {
                throw new IllegalStateException("s3proxy exited with " + process.exitValue() + ": "
                    + Files.readString(dir.resolve("s3proxy.log")));
            }
            if (System.nanoTime() > deadline) {
                stop();
                throw new IllegalStateException("s3proxy did not answer on " + endpoint() + " within 60 s");
            }
            Thread.sleep(100);
        }
        return this;
    }

    private boolean answers() {
        try {
            HttpURLConnection connection = (HttpURLConnection) URI.create(endpoint() + "/").toURL().openConnection();
            connection.setConnectTimeout(500);
            connection.setReadTimeout(2000);
            int status = connection.getResponseCode(); // 403 without credentials: it is up
            connection.disconnect();
            return status > 0;
        } catch (IOException e) {
            return false;
        }
    }

    /** Stop it (SIGTERM, then SIGKILL) and wait; {@link #start()} starts it again. */
    void stop() {
        if (process != null && process.isAlive()) {
            process.destroy();
            try {
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    process.destroyForcibly().waitFor();
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void close() {
        stop();
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket()) {
            socket.bind(new InetSocketAddress("127.0.0.1", 0));
            return socket.getLocalPort();
        }
    }
}
