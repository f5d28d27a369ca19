/*
 * kafka-ui stand-in: NOT Kafka UI.
 *
 * The real Kafka UI (kafbat/kafka-ui) ships only as a jar on GitHub releases and as a container
 * image, and neither can be downloaded on the machines that test laddr.kafka (only package
 * registries are reachable). scripts/kafka-dist builds this small program into
 * kafka-ui/standin/kafka-ui-standin-<version>.jar of the artifact mirror so that the role
 * laddr.kafka.kafka_ui can be tested end to end. It imitates exactly what the role relies on:
 *
 *   - the configuration file is given the way the real jar takes it, as the Spring property
 *     spring.config.additional-location (-D system property or --spring.config.additional-location=
 *     argument); the block-style YAML the role writes is read into Spring-style keys
 *     (server.port, kafka.clusters[0].bootstrapServers, auth.type, spring.security.user.name, ...);
 *   - HTTP on server.port (default 8080): GET /actuator/health answers {"status":"UP"} to anyone;
 *   - with auth.type LOGIN_FORM every other path needs a login, as kafbat's form login does:
 *     unauthenticated requests get 302 to /login, POST /login with the configured user and
 *     password gets 302 to / and a session cookie, wrong credentials get 302 to /login?error;
 *   - GET /standin/config (logged in) shows what was read, without the password, so that tests
 *     can prove the configuration reached the process.
 *
 * It connects to no broker. Unlike the real jar it refuses to start without a readable
 * configuration file, so that a wrong path shows up at once.
 */

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;

public final class KafkaUiStandin {

  static final String VERSION = "0.1.0";
  static final String LOCATION_PROPERTY = "spring.config.additional-location";

  private final Map<String, String> config;
  private final String location;
  private final Set<String> sessions = ConcurrentHashMap.newKeySet();
  private final SecureRandom random = new SecureRandom();

  private KafkaUiStandin(Map<String, String> config, String location) {
    this.config = config;
    this.location = location;
  }

  public static void main(String[] args) throws IOException {
    String location = System.getProperty(LOCATION_PROPERTY);
    for (String arg : args) {
      if (arg.startsWith("--" + LOCATION_PROPERTY + "=")) {
        location = arg.substring(LOCATION_PROPERTY.length() + 3);
      }
    }
    if (location == null || location.isBlank()) {
      System.err.println("kafka-ui stand-in: no configuration; pass -D" + LOCATION_PROPERTY + "=<file>");
      System.exit(2);
    }
    location = location.startsWith("file:") ? location.substring(5) : location;
    Map<String, String> config;
    try {
      config = parseYaml(Files.readAllLines(Path.of(location), StandardCharsets.UTF_8));
    } catch (IOException e) {
      System.err.println("kafka-ui stand-in: cannot read " + location + ": " + e);
      System.exit(2);
      return;
    }
    new KafkaUiStandin(config, location).serve();
  }

  private void serve() throws IOException {
    int port = Integer.parseInt(config.getOrDefault("server.port", "8080"));
    HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
    server.createContext("/", this::handle);
    server.setExecutor(Executors.newFixedThreadPool(4));
    server.start();
    Runtime.getRuntime().addShutdownHook(new Thread(() -> server.stop(0)));
    System.out.println("kafka-ui stand-in " + VERSION + " (not Kafka UI) on port " + port + ", configuration "
        + location + ", auth " + authType() + ", clusters " + clusters());
  }

  private String authType() {
    return config.getOrDefault("auth.type", "DISABLED");
  }

  private List<Map<String, String>> clusters() {
    List<Map<String, String>> found = new ArrayList<>();
    for (int i = 0; config.containsKey("kafka.clusters[" + i + "].name"); i++) {
      String prefix = "kafka.clusters[" + i + "].";
      Map<String, String> cluster = new LinkedHashMap<>();
      for (String key : List.of("name", "bootstrapServers", "metrics.type", "metrics.port")) {
        cluster.put(key, config.getOrDefault(prefix + key, ""));
      }
      found.add(cluster);
    }
    return found;
  }

  private void handle(HttpExchange exchange) throws IOException {
    try (exchange) {
      String path = exchange.getRequestURI().getPath();
      String method = exchange.getRequestMethod();
      if (path.equals("/actuator/health")) {
        send(exchange, 200, "application/json", "{\"status\":\"UP\"}");
      } else if (path.equals("/login") && method.equals("POST")) {
        login(exchange);
      } else if (path.equals("/login")) {
        send(exchange, 200, "text/html", "<form method=\"post\" action=\"/login\">"
            + "<input name=\"username\"><input name=\"password\" type=\"password\"><button>Log in</button></form>");
      } else if (authType().equals("LOGIN_FORM") && !loggedIn(exchange)) {
        redirect(exchange, "/login");
      } else if (path.equals("/standin/config")) {
        send(exchange, 200, "application/json", configJson());
      } else if (path.equals("/")) {
        send(exchange, 200, "text/html", "<h1>kafka-ui stand-in " + VERSION + "</h1><p>Not Kafka UI.</p>");
      } else {
        send(exchange, 404, "text/plain", "not found\n");
      }
    }
  }

  private void login(HttpExchange exchange) throws IOException {
    Map<String, String> form = new HashMap<>();
    String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
    for (String pair : body.split("&")) {
      int eq = pair.indexOf('=');
      if (eq > 0) {
        form.put(URLDecoder.decode(pair.substring(0, eq), StandardCharsets.UTF_8),
            URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
      }
    }
    if (same(form.get("username"), config.get("spring.security.user.name"))
        && same(form.get("password"), config.get("spring.security.user.password"))) {
      byte[] token = new byte[24];
      random.nextBytes(token);
      String session = HexFormat.of().formatHex(token);
      sessions.add(session);
      exchange.getResponseHeaders().add("Set-Cookie", "SESSION=" + session + "; Path=/; HttpOnly");
      redirect(exchange, "/");
    } else {
      redirect(exchange, "/login?error");
    }
  }

  private static boolean same(String given, String expected) {
    return given != null && expected != null && !expected.isEmpty()
        && MessageDigest.isEqual(given.getBytes(StandardCharsets.UTF_8), expected.getBytes(StandardCharsets.UTF_8));
  }

  private boolean loggedIn(HttpExchange exchange) {
    for (String header : exchange.getRequestHeaders().getOrDefault("Cookie", List.of())) {
      for (String cookie : header.split(";")) {
        String[] kv = cookie.trim().split("=", 2);
        if (kv.length == 2 && kv[0].equals("SESSION") && sessions.contains(kv[1])) {
          return true;
        }
      }
    }
    return false;
  }

  private String configJson() {
    StringBuilder json = new StringBuilder("{\"standin\":true,\"version\":").append(quote(VERSION))
        .append(",\"location\":").append(quote(location))
        .append(",\"serverPort\":").append(quote(config.getOrDefault("server.port", "8080")))
        .append(",\"authType\":").append(quote(authType()))
        .append(",\"user\":").append(quote(config.getOrDefault("spring.security.user.name", "")))
        .append(",\"clusters\":[");
    List<Map<String, String>> clusters = clusters();
    for (int i = 0; i < clusters.size(); i++) {
      json.append(i == 0 ? "{" : ",{");
      int n = 0;
      for (Map.Entry<String, String> entry : clusters.get(i).entrySet()) {
        json.append(n++ == 0 ? "" : ",").append(quote(entry.getKey())).append(':').append(quote(entry.getValue()));
      }
      json.append('}');
    }
    return json.append("]}").toString();
  }

  private static void redirect(HttpExchange exchange, String location) throws IOException {
    exchange.getResponseHeaders().add("Location", location);
    exchange.sendResponseHeaders(302, -1);
  }

  private static void send(HttpExchange exchange, int status, String type, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().add("Content-Type", type + "; charset=utf-8");
    exchange.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(bytes);
    }
  }

  private static String quote(String text) {
    StringBuilder out = new StringBuilder("\"");
    for (char c : text.toCharArray()) {
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.append('"').toString();
  }

  /**
   * Reads block-style YAML (mappings, lists of mappings and of scalars, plain, single- and
   * double-quoted scalars) into Spring-style keys such as kafka.clusters[0].name. Flow style,
   * anchors and multi-line scalars are not supported: the role does not write them.
   */
  static Map<String, String> parseYaml(List<String> lines) {
    Map<String, String> values = new LinkedHashMap<>();
    // Open keys, innermost last: indent, path, and the index of the last list item under it.
    Deque<Object[]> open = new ArrayDeque<>();
    for (String raw : lines) {
      String text = raw.strip();
      if (text.isEmpty() || text.startsWith("#") || text.equals("---")) {
        continue;
      }
      int indent = raw.indexOf(text.charAt(0));
      while (!open.isEmpty() && (int) open.peekLast()[0] >= indent) {
        open.removeLast();
      }
      String parent = open.isEmpty() ? "" : (String) open.peekLast()[1];
      if (text.startsWith("- ") || text.equals("-")) {
        Object[] list = open.peekLast();
        int index = list == null ? 0 : (int) list[2] + 1;
        if (list != null) {
          list[2] = index;
        }
        String item = parent + "[" + index + "]";
        open.addLast(new Object[] {indent, item, -1});
        text = text.substring(1).strip();
        indent += 2;
        parent = item;
        if (text.isEmpty()) {
          continue;
        }
        if (!text.contains(": ") && !text.endsWith(":")) {
          values.put(item, scalar(text));
          continue;
        }
      }
      int colon = text.startsWith("\"") || text.startsWith("'") ? -1 : text.indexOf(':');
      if (colon < 0) {
        throw new IllegalArgumentException("kafka-ui stand-in: cannot read YAML line: " + raw);
      }
      String key = (parent.isEmpty() ? "" : parent + ".") + text.substring(0, colon).strip();
      String rest = text.substring(colon + 1).strip();
      if (rest.isEmpty() || rest.startsWith("#")) {
        open.addLast(new Object[] {indent, key, -1});
      } else {
        values.put(key, scalar(rest));
      }
    }
    return values;
  }

  private static String scalar(String text) {
    if (text.startsWith("'") && text.endsWith("'") && text.length() >= 2) {
      return text.substring(1, text.length() - 1).replace("''", "'");
    }
    if (text.startsWith("\"") && text.endsWith("\"") && text.length() >= 2) {
      StringBuilder out = new StringBuilder();
      String body = text.substring(1, text.length() - 1);
      for (int i = 0; i < body.length(); i++) {
        char c = body.charAt(i);
        if (c != '\\' || i + 1 == body.length()) {
          out.append(c);
          continue;
        }
        char next = body.charAt(++i);
        switch (next) {
          case 'n' -> out.append('\n');
          case 't' -> out.append('\t');
          case 'u' -> {
            out.append((char) Integer.parseInt(body.substring(i + 1, i + 5), 16));
            i += 4;
          }
          default -> out.append(next);
        }
      }
      return out.toString();
    }
    int comment = text.indexOf(" #");
    return (comment < 0 ? text : text.substring(0, comment)).strip();
  }
}
