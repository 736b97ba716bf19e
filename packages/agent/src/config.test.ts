import { describe, expect, it } from "vitest";
import { AgentConfigError, type ConfigContext, parseAgentConfig } from "./config.ts";

const PROJECT = "6f1c2a9e-3b1d-4c55-9e2f-0a1b2c3d4e5f";
const SECRET_ID = "0b7e9c1d-2f3a-4b5c-8d6e-7f8091a2b3c4";

const context = (overrides: Partial<ConfigContext> = {}): ConfigContext => ({
  baseDir: "/etc/coffer",
  env: { COFFER_TOKEN: "tok-from-env" },
  readFile: async (file) => {
    if (file === "/etc/coffer/token") return Buffer.from("tok-from-file\n");
    if (file === "/var/run/secrets/coffer/token") return Buffer.from("eyJhbGciOi.jwt.sig\n");
    if (file === "/etc/coffer/empty-jwt") return Buffer.from("\n");
    if (file.endsWith(".pem")) return Buffer.from(`pem of ${file}`);
    throw Object.assign(new Error("nope"), { code: "ENOENT" });
  },
  lookupId: async (kind, name) => (name === "app" ? (kind === "user" ? 1001 : 2002) : undefined),
  ...overrides,
});

const minimal = `
server:
  url: http://127.0.0.1:8080
project_id: ${PROJECT}
state_file: state.json
secrets:
  - name: db
    destination: db.txt
`;

async function errorOf(text: string, ctx = context()): Promise<string> {
  try {
    await parseAgentConfig(text, ctx);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentConfigError);
    return (err as Error).message;
  }
  throw new Error("expected the config to be refused");
}

describe("parseAgentConfig", () => {
  it("fills in defaults and resolves relative paths against the config's folder", async () => {
    const config = await parseAgentConfig(minimal, context());
    expect(config).toEqual({
      server: {
        url: "http://127.0.0.1:8080",
        protocol: "connect",
        token: "tok-from-env",
        tokenEnv: "COFFER_TOKEN",
        callTimeoutMs: 30_000,
      },
      projectId: PROJECT,
      region: "",
      stateFile: "/etc/coffer/state.json",
      heartbeatIntervalMs: 15_000,
      logLevel: "info",
      secrets: [
        {
          ref: { kind: "location", path: "/", name: "db" },
          revision: "latest_enabled",
          destination: "/etc/coffer/db.txt",
          mode: 0o400,
          format: { kind: "raw" },
        },
      ],
    });
  });

  it("reads every documented field", async () => {
    const config = await parseAgentConfig(
      `
server:
  url: https://coffer.internal:8443
  protocol: grpc
  token_file: token
  tls: { ca_file: ca.pem, cert_file: /x/cert.pem, key_file: key.pem }
  timeout: 5s
project_id: ${PROJECT}
region: fr-par
state_file: /var/lib/agent/state.json
health_listen: 127.0.0.1:0
heartbeat_interval: 1m30s
log_level: debug
on_change:
  signal: HUP
  pid_file: /run/app.pid
  debounce: 250ms
secrets:
  - path: /prod/
    name: db
    revision: 3
    destination: /run/secrets/db.env
    mode: 0440
    owner: app
    group: 0
    format: dotenv
    on_change:
      command: [nginx, -s, reload]
      command_timeout: 10s
  - id: ${SECRET_ID}
    destination: /run/secrets/pw
    mode: "0600"
    format: json_field
    field: password
`,
      context(),
    );
    expect(config.server).toEqual({
      url: "https://coffer.internal:8443",
      protocol: "grpc",
      token: "tok-from-file",
      tls: {
        ca: Buffer.from("pem of /etc/coffer/ca.pem"),
        cert: Buffer.from("pem of /x/cert.pem"),
        key: Buffer.from("pem of /etc/coffer/key.pem"),
      },
      callTimeoutMs: 5000,
    });
    expect(config.region).toBe("fr-par");
    expect(config.healthListen).toEqual({ host: "127.0.0.1", port: 0 });
    expect(config.heartbeatIntervalMs).toBe(90_000);
    expect(config.logLevel).toBe("debug");
    expect(config.onChange).toEqual({
      action: { kind: "signal", signal: "SIGHUP", pidFile: "/run/app.pid" },
      debounceMs: 250,
    });
    expect(config.secrets).toEqual([
      {
        ref: { kind: "location", path: "/prod", name: "db" },
        revision: 3,
        destination: "/run/secrets/db.env",
        mode: 0o440,
        uid: 1001,
        gid: 0,
        format: { kind: "dotenv" },
        onChange: {
          action: { kind: "command", argv: ["nginx", "-s", "reload"], timeoutMs: 10_000 },
          debounceMs: 1000,
        },
      },
      {
        ref: { kind: "id", id: SECRET_ID },
        revision: "latest_enabled",
        destination: "/run/secrets/pw",
        mode: 0o600,
        format: { kind: "json_field", field: "password" },
      },
    ]);
  });

  it("takes the token from the variable named by token_env", async () => {
    const config = await parseAgentConfig(
      minimal.replace("url: http://127.0.0.1:8080", "url: http://h:1\n  token_env: MY_TOKEN"),
      context({ env: { MY_TOKEN: " t " } }),
    );
    expect(config.server.token).toBe("t");
  });

  it("signs in with a JWT file instead of a token with server.auth", async () => {
    const withAuth = (auth: string) =>
      minimal.replace("url: http://127.0.0.1:8080", `url: http://h:1\n  auth: ${auth}`);
    const config = await parseAgentConfig(
      withAuth("{ jwt_file: /var/run/secrets/coffer/token, ttl: 10m }"),
      context({ env: {} }),
    );
    expect(config.server).toEqual({
      url: "http://h:1",
      protocol: "connect",
      token: "",
      auth: { jwtFile: "/var/run/secrets/coffer/token", ttlMs: 600_000 },
      callTimeoutMs: 30_000,
    });
    // Neither the JWT nor COFFER_TOKEN is needed or kept.
    expect(JSON.stringify(config)).not.toContain("eyJ");
    const noTtl = await parseAgentConfig(
      withAuth("{ jwt_file: /var/run/secrets/coffer/token }"),
      context({ env: {} }),
    );
    expect(noTtl.server.auth).toEqual({ jwtFile: "/var/run/secrets/coffer/token" });
  });

  it("refuses server.auth beside a token, without jwt_file, with an unreadable file or a bad ttl", async () => {
    const withAuth = (lines: string) =>
      minimal.replace("url: http://127.0.0.1:8080", `url: http://h:1\n${lines}`);
    expect(
      await errorOf(
        withAuth("  token_file: token\n  auth: { jwt_file: /var/run/secrets/coffer/token }"),
      ),
    ).toContain(
      "server.auth: signs in with a JWT instead of a token: remove token_file and token_env",
    );
    expect(
      await errorOf(
        withAuth("  token_env: X\n  auth: { jwt_file: /var/run/secrets/coffer/token }"),
      ),
    ).toContain("remove token_file and token_env");
    expect(await errorOf(withAuth("  auth: { ttl: 5m }"))).toContain(
      "server.auth.jwt_file: is required",
    );
    expect(await errorOf(withAuth("  auth: /x"))).toContain(
      "server.auth: must be a mapping with jwt_file",
    );
    expect(await errorOf(withAuth("  auth: { jwt_file: jwt }"))).toContain(
      "server.auth.jwt_file: cannot read /etc/coffer/jwt (ENOENT)",
    );
    expect(await errorOf(withAuth("  auth: { jwt_file: empty-jwt }"))).toContain(
      "server.auth.jwt_file: /etc/coffer/empty-jwt is empty",
    );
    expect(
      await errorOf(withAuth("  auth: { jwt_file: /var/run/secrets/coffer/token, ttl: 30s }")),
    ).toMatch(/server\.auth\.ttl: .*30s/);
    expect(
      await errorOf(withAuth("  auth: { jwt_file: /var/run/secrets/coffer/token, jwt: x }")),
    ).toContain('server.auth: unknown field "jwt"');
  });

  it("names the field path and the rule of each problem", async () => {
    const message = await errorOf(`
server:
  url: ftp://x
  protocl: grpc
project_id: not-a-uuid
state_file: s.json
heartbeat_interval: 10
secrets:
  - name: a
    destination: a
  - name: b
    destination: b
    format: json_field
  - name: c
    destination: c
    mode: "0999"
  - id: ${SECRET_ID}
    name: d
    destination: d
  - name: e
    destination: e
    on_change: { command: [x], signal: HUP }
`);
    expect(
      message
        .split("\n")
        .slice(1)
        .map((l) => l.trim()),
    ).toEqual(
      expect.arrayContaining([
        'server: unknown field "protocl"',
        "server.url: must be a URL like http://127.0.0.1:8080",
        "project_id: must be a project UUID",
        "heartbeat_interval: must be a duration like 500ms, 30s, 5m, 1h30m or 7d",
        "secrets[1].field: is required with format json_field",
        'secrets[2].mode: must be an octal string like "0400"',
        "secrets[3]: names a secret by id or by path and name, not both",
        "secrets[4].on_change: needs exactly one of command or signal",
      ]),
    );
  });

  it("says which required field is missing", async () => {
    expect(await errorOf("server: { url: http://h:1 }\n")).toContain("project_id: is required");
    expect(await errorOf("server: { url: http://h:1 }\n")).toContain("secrets: is required");
    expect(await errorOf(minimal.replace("state_file: state.json", ""))).toContain(
      "state_file: is required",
    );
  });

  it("refuses a missing token, an unreadable token file, an unknown owner and a shared destination", async () => {
    const message = await errorOf(
      `${minimal.replace("url: http://127.0.0.1:8080", "url: http://h:1\n  token_file: missing")}
  - name: other
    destination: db.txt
    owner: nobody-here
`,
    );
    expect(message).toContain("server.token_file: cannot read /etc/coffer/missing (ENOENT)");
    expect(message).toContain('secrets[1].owner: no user named "nobody-here"');
    expect(message).toContain(
      "secrets[1].destination: /etc/coffer/db.txt is also the destination of secrets[0]",
    );
    expect(await errorOf(minimal, context({ env: {} }))).toContain(
      "server.token_env: environment variable COFFER_TOKEN is not set",
    );
  });

  it("refuses TLS files with a cleartext URL, and bad listen addresses, paths and names", async () => {
    expect(
      await errorOf(
        minimal.replace(
          "url: http://127.0.0.1:8080",
          "url: http://h:1\n  tls: { ca_file: ca.pem }",
        ),
      ),
    ).toContain("server.tls: needs an https:// url");
    expect(await errorOf(`${minimal}health_listen: nope\n`)).toContain(
      'health_listen: must be host:port, like "127.0.0.1:9300"',
    );
    expect(await errorOf(minimal.replace("- name: db", "- name: db\n    path: prod"))).toContain(
      'secrets[0].path: must be a folder like "/" or "/prod/db"',
    );
    expect(await errorOf(minimal.replace("- name: db", "- name: a/b"))).toContain(
      "secrets[0].name: must be 1-255 letters",
    );
    expect(
      await errorOf(minimal.replace("- name: db", "- name: db\n    revision: latest")),
    ).toContain('secrets[0].revision: must be "latest_enabled" or a revision number');
    expect(await errorOf(`${minimal}on_change: { signal: HUP }\n`)).toContain(
      "on_change.signal: needs exactly one of pid or pid_file",
    );
    expect(await errorOf(`${minimal}on_change: { signal: NOPE, pid: 1 }\n`)).toContain(
      "on_change.signal: must be a signal name like SIGHUP",
    );
  });

  it("words a rule without a message of its own as zod does in English", async () => {
    expect(
      await errorOf(minimal.replace("destination: db.txt", "destination: db.txt\n    owner: -1")),
    ).toBe("invalid agent config:\n  secrets[0].owner: Too small: expected number to be >=0");
  });

  it("refuses text that is not YAML", async () => {
    expect(await errorOf("server: [unclosed")).toMatch(/^config is not valid YAML/);
  });
});
