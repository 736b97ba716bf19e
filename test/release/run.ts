/**
 * The release test: Coffer's packages as a stranger installs them.
 *
 *   node --import tsx test/release/run.ts [--tarballs DIR] [--keep]
 *
 * Packs every publishable package (scripts/pack-packages.mjs, which builds
 * them and checks each tarball), or takes the tarballs and manifest.json
 * that script left in DIR (scripts/release.mjs does). Then, in a temporary
 * folder outside the repository, with no workspace and no link, installs the
 * tarballs with npm in one command (so that each @coffer dependency is met by
 * its tarball, never the registry) and, using only what was installed:
 * starts `coffer-server` from node_modules/.bin on a fresh embedded database,
 * and checks that it serves the installed web console at `/`;
 * with the `coffer` command creates a project, secrets and a sidecar token;
 * runs `coffer-agent`, then the agent's single-file bundle alone in another
 * folder with a bare `node`, each writing the secrets to files and following
 * a change; reads a secret from a plain .mjs script with @coffer/client (the
 * Node and the web entry; @coffer/server/testing must not resolve there);
 * type-checks a TypeScript consumer with
 * moduleResolution node16 and bundler; compiles @coffer/api's .proto files
 * on their own (buf build), as another language's generator would; bundles
 * @coffer/client/web for the browser with esbuild. Every Node process it starts (but the bare agent)
 * records each module it resolves, and none may be a file of the
 * repository. --keep leaves the temporary folder for a look.
 */
import { cp, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { bundleWebClient, typeCheckConsumers } from "./consumers.ts";
import {
  cleanEnv,
  elapsed,
  isInside,
  REPO_ROOT,
  run,
  Service,
  step,
  waitUntil,
} from "./harness.ts";
import { checkInstallation, checkNoModulesAbove, checkTrace, writeTrace } from "./isolation.ts";

interface Manifest {
  version: string;
  packages: { name: string; file: string; size: number; unpackedSize: number }[];
}

const { values: options } = parseArgs({
  options: { tarballs: { type: "string" }, keep: { type: "boolean", default: false } },
});

/** The exact version of a tool the repository has installed, so that npm finds it in its cache. */
function toolVersion(name: string, from = "."): string {
  const require = createRequire(path.join(REPO_ROOT, from, "package.json"));
  return (require(`${name}/package.json`) as { version: string }).version;
}

const services: Service[] = [];
const root = await realpath(await mkdtemp(path.join(tmpdir(), "coffer-release-")));
if (isInside(root, await realpath(REPO_ROOT))) {
  throw new Error(`the temporary folder ${root} is inside the repository: set TMPDIR elsewhere`);
}
const app = path.join(root, "app");
const bin = (name: string) => path.join(app, "node_modules/.bin", name);

try {
  // 1. The tarballs, copied into the temporary folder: even the paths npm
  // records point outside the repository.
  const tarballs = path.join(root, "tarballs");
  const manifest = await step(
    "pack every package (build, npm pack, check the tarballs)",
    async () => {
      if (options.tarballs !== undefined) {
        await cp(path.resolve(options.tarballs), tarballs, { recursive: true });
      } else {
        const packed = await run(
          process.execPath,
          [path.join(REPO_ROOT, "scripts/pack-packages.mjs"), tarballs],
          { cwd: REPO_ROOT, env: cleanEnv(), timeoutMs: 600_000 },
        );
        process.stdout.write(packed.stdout);
      }
      return JSON.parse(await readFile(path.join(tarballs, "manifest.json"), "utf8")) as Manifest;
    },
  );
  const { version } = manifest;
  const names = manifest.packages.map((p) => p.name);

  // 2. One npm install of every tarball, with the tools the consumers need.
  await step(`npm install the ${names.length} tarballs in ${app}`, async () => {
    await mkdir(app);
    await writeFile(
      path.join(app, "package.json"),
      `${JSON.stringify({ name: "coffer-release-app", private: true, type: "module" })}\n`,
    );
    const tools = [
      `typescript@${toolVersion("typescript")}`,
      `@types/node@${toolVersion("@types/node")}`,
      `esbuild@${toolVersion("esbuild", "packages/client")}`,
      `@bufbuild/buf@${toolVersion("@bufbuild/buf")}`,
    ];
    const specs = manifest.packages.map((p) => path.join(tarballs, p.file));
    await run(
      "npm",
      ["install", "--prefer-offline", "--no-audit", "--no-fund", ...specs, ...tools],
      { cwd: app, env: cleanEnv(), timeoutMs: 600_000 },
    );
    const lock = JSON.parse(await readFile(path.join(app, "package-lock.json"), "utf8")) as {
      packages: Record<string, { resolved?: string }>;
    };
    for (const [where, entry] of Object.entries(lock.packages)) {
      if (!/(^|\/)node_modules\/@coffer\//.test(where)) continue;
      const name = where.slice(where.lastIndexOf("@coffer/"));
      const expected = manifest.packages.find((p) => p.name === name);
      if (where !== `node_modules/${name}` || expected === undefined) {
        throw new Error(
          `npm installed ${where}: every @coffer package must be the one from its tarball`,
        );
      }
      const from = entry.resolved?.startsWith("file:")
        ? path.resolve(app, entry.resolved.slice(5))
        : "";
      if (from !== path.join(tarballs, expected.file)) {
        throw new Error(`${name} came from ${entry.resolved}, not ${expected.file}`);
      }
    }
  });

  await step(
    "check the installation: real folders, no link or path into the repository",
    async () => {
      const links = await checkInstallation(app, names, version);
      console.log(`  ${names.join(", ")} at ${version}; ${links} links, all inside ${root}`);
    },
  );

  // Every process below but the bare agent records what it resolves.
  const traceLog = path.join(root, "trace.log");
  const trace = await writeTrace(root, traceLog);

  // 3. The server, from its bin, on a fresh embedded database.
  const server = await step("start coffer-server from node_modules/.bin on PGlite", async () => {
    const shown = await run(bin("coffer-server"), ["--version"], {
      cwd: app,
      env: cleanEnv(trace),
    });
    const versionLine = new RegExp(
      `^coffer-server ${version.replaceAll(".", "\\.")} \\(commit ([0-9a-f]{7,40}),`,
    );
    const commit = versionLine.exec(shown.stdout)?.[1];
    if (commit === undefined) throw new Error(`coffer-server --version printed ${shown.stdout}`);
    // A token of the right form, made by the installed package.
    const made = await run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        "import { generateToken } from '@coffer/server'; console.log(generateToken().value)",
      ],
      { cwd: app, env: cleanEnv(trace) },
    );
    const adminToken = made.stdout.trim();
    const cwd = path.join(root, "server");
    await mkdir(cwd);
    const serverProcess = new Service("coffer-server", bin("coffer-server"), [], {
      cwd,
      env: cleanEnv({
        ...trace,
        COFFER_DATA_DIR: path.join(root, "data"),
        COFFER_GRPC_LISTEN: "127.0.0.1:0",
        COFFER_HTTP_LISTEN: "127.0.0.1:0",
        COFFER_METRICS_LISTEN: "127.0.0.1:0",
        COFFER_BOOTSTRAP_TOKEN: adminToken,
      }),
    });
    services.push(serverProcess);
    const serving = await serverProcess.waitForLine((line) => {
      if (!line.includes("coffer is serving")) return undefined;
      return JSON.parse(line) as { http: string; metrics: string; console: string };
    }, 180_000);
    const url = `http://${serving.http}`;
    const metrics = await (await fetch(`http://${serving.metrics}`)).text();
    const info = metrics.split("\n").find((l) => l.startsWith("coffer_build_info{"));
    if (!info?.includes(`version="${version}"`) || !info.includes(`commit="${commit}"`)) {
      throw new Error(`coffer_build_info is ${info}, not version ${version} commit ${commit}`);
    }
    console.log(`  ${shown.stdout.trim()}; serving on ${url}; ${info}`);
    return { process: serverProcess, url, adminToken, consoleAt: serving.console };
  });

  // 3b. The web console, from the installed @coffer/console, on the HTTP port.
  await step(
    "the web console at / of the HTTP port (from the installed @coffer/console)",
    async () => {
      if (server.consoleAt !== `${server.url}/`) {
        throw new Error(
          `the server says the console is at ${server.consoleAt}, not ${server.url}/`,
        );
      }
      const page = await fetch(`${server.url}/`);
      const html = await page.text();
      const csp = page.headers.get("content-security-policy") ?? "";
      if (page.status !== 200 || !html.includes('<div id="root">')) {
        throw new Error(`GET / answered ${page.status}: ${html.slice(0, 200)}`);
      }
      if (!csp.includes("default-src 'none'") || !csp.includes("script-src 'self'")) {
        throw new Error(`GET / has content-security-policy ${JSON.stringify(csp)}`);
      }
      if (page.headers.get("cache-control") !== "no-cache") {
        throw new Error(`GET / has cache-control ${page.headers.get("cache-control")}`);
      }
      const installed = await readFile(
        path.join(app, "node_modules/@coffer/console/dist/index.html"),
        "utf8",
      );
      if (html !== installed) throw new Error("GET / is not the installed console's index.html");
      const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      if (script === undefined) throw new Error("the console's index.html names no /assets/*.js");
      const asset = await fetch(`${server.url}${script}`);
      const body = await asset.arrayBuffer();
      const cache = asset.headers.get("cache-control");
      if (asset.status !== 200 || body.byteLength === 0) {
        throw new Error(`GET ${script} answered ${asset.status} with ${body.byteLength} bytes`);
      }
      if (cache !== "public, max-age=31536000, immutable") {
        throw new Error(`GET ${script} has cache-control ${cache}`);
      }
      console.log(`  / is the console (CSP on), ${script} is ${body.byteLength} bytes, immutable`);
    },
  );

  // 4. The CLI: a project, two secrets, a sidecar token.
  const cliEnv: Record<string, string> = {
    ...trace,
    COFFER_URL: server.url,
    COFFER_TOKEN: server.adminToken,
    COFFER_CONFIG: path.join(root, "cli-profile.json"),
  };
  const coffer = async (...args: string[]) =>
    (await run(bin("coffer"), args, { cwd: app, env: cleanEnv(cliEnv) })).stdout;
  const { projectId, sidecarToken } = await step(
    "coffer: a project, secrets and a token",
    async () => {
      const printed = (await coffer("--version")).trim();
      if (printed !== `coffer ${version}`) throw new Error(`coffer --version printed ${printed}`);
      const created = JSON.parse(
        await coffer("project", "create", "release-test", "-o", "json"),
      ) as {
        project: { id: string };
      };
      const projectId = created.project.id;
      cliEnv.COFFER_PROJECT = projectId;
      await coffer(
        "secret",
        "create",
        "/app/db",
        "--type",
        "key_value",
        "--data",
        '{"user":"app","password":"p-1"}',
      );
      await coffer("secret", "create", "/app/api-key", "--data", "k-1");
      const sidecarToken = (
        await coffer("token", "create", "sidecar", "--grant", "secret_access:/app")
      ).trim();
      if (!sidecarToken.startsWith("coffer_"))
        throw new Error(`token create printed ${sidecarToken}`);
      const password = await coffer("version", "access", "/app/db", "--field", "password", "--raw");
      if (password !== "p-1") throw new Error(`version access printed ${password}`);
      console.log(`  project ${projectId}, /app/db and /app/api-key, a secret_access token`);
      return { projectId, sidecarToken };
    },
  );

  // 4b. The Scaleway-compatible REST API, on the HTTP port of the installed server.
  await step("the Scaleway-compatible REST API (X-Auth-Token, access by path)", async () => {
    const query = new URLSearchParams({
      project_id: projectId,
      secret_path: "/app",
      secret_name: "api-key",
    });
    const res = await fetch(
      `${server.url}/secret-manager/v1beta1/regions/local/secrets-by-path/versions/latest_enabled/access?${query}`,
      { headers: { "x-auth-token": sidecarToken } },
    );
    const type = res.headers.get("content-type");
    const body = (await res.json()) as { data?: string; type?: string };
    if (res.status !== 200 || type !== "application/json") {
      throw new Error(`GET …/access answered ${res.status} (${type})`);
    }
    if (Buffer.from(body.data ?? "", "base64").toString() !== "k-1" || body.type !== "opaque") {
      throw new Error("GET …/access did not answer the payload written by the CLI");
    }
    console.log("  GET …/secrets-by-path/versions/latest_enabled/access answered the payload");
  });

  /**
   * Runs an agent (`start` spawns it in `folder`, with `agent.yaml` there)
   * until it wrote both secrets as `expected` says, then writes
   * `change` with the CLI and waits for its file to follow; stops it, which
   * must end with exit code 0.
   */
  const followSecrets = async (
    folder: string,
    start: (config: string) => Service,
    expected: { password: string; apiKey: string },
    change: { secret: string; data: string; file: string; content: string },
  ) => {
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, "token"), `${sidecarToken}\n`);
    const config = path.join(folder, "agent.yaml");
    // JSON is YAML.
    await writeFile(
      config,
      JSON.stringify({
        server: { url: server.url, token_file: "token" },
        project_id: projectId,
        state_file: "state.json",
        secrets: [
          {
            path: "/app",
            name: "db",
            destination: "files/db-password",
            format: "json_field",
            field: "password",
          },
          { path: "/app", name: "api-key", destination: "files/api-key" },
        ],
      }),
    );
    const agent = start(config);
    services.push(agent);
    const read = (file: string) =>
      readFile(path.join(folder, "files", file), "utf8").catch(() => undefined);
    const files = async () => ({
      password: await read("db-password"),
      apiKey: await read("api-key"),
    });
    await waitUntil(
      async () => {
        const now = await files();
        return now.password === expected.password && now.apiKey === expected.apiKey
          ? true
          : undefined;
      },
      60_000,
      () =>
        `${agent.name} did not write the files (want ${JSON.stringify(expected)}); its output:\n${agent.output}`,
    );
    const changedAt = Date.now();
    await coffer("version", "create", change.secret, "--data", change.data);
    await waitUntil(
      async () => ((await read(change.file)) === change.content ? true : undefined),
      30_000,
      () =>
        `${agent.name}: ${change.file} did not follow ${change.secret}; its output:\n${agent.output}`,
    );
    const followedMs = Date.now() - changedAt;
    const code = await agent.stop();
    if (code !== 0)
      throw new Error(`${agent.name} exited ${code} on SIGTERM; its output:\n${agent.output}`);
    return followedMs;
  };

  // 5. The installed agent.
  await step("coffer-agent from node_modules/.bin: files written, a change followed", async () => {
    const folder = path.join(root, "agent");
    const ms = await followSecrets(
      folder,
      (config) =>
        new Service("coffer-agent", bin("coffer-agent"), ["--config", config], {
          cwd: folder,
          env: cleanEnv(trace),
        }),
      { password: "p-1", apiKey: "k-1" },
      {
        secret: "/app/db",
        data: '{"user":"app","password":"p-2"}',
        file: "db-password",
        content: "p-2",
      },
    );
    console.log(`  db-password followed the new version in ${ms} ms (command included)`);
  });

  // 6. The single-file agent, alone in a folder, with a bare node.
  await step(
    "dist/coffer-agent.mjs alone, with a bare node: files written, a change followed",
    async () => {
      const folder = path.join(root, "sidecar");
      await mkdir(folder);
      await checkNoModulesAbove(folder);
      const bundle = path.join(folder, "coffer-agent.mjs");
      await cp(path.join(app, "node_modules/@coffer/agent/dist/coffer-agent.mjs"), bundle);
      const ms = await followSecrets(
        folder,
        (config) =>
          new Service("coffer-agent.mjs", process.execPath, [bundle, "--config", config], {
            cwd: folder,
            env: cleanEnv(),
          }),
        { password: "p-2", apiKey: "k-1" },
        { secret: "/app/api-key", data: "k-2", file: "api-key", content: "k-2" },
      );
      console.log(`  api-key followed the new version in ${ms} ms (command included)`);
    },
  );

  // 7. The client from a plain .mjs script, with the sidecar's token.
  await step("@coffer/client from a plain .mjs script (Node entry and web entry)", async () => {
    const script = path.join(app, "read-secret.mjs");
    await writeFile(
      script,
      `import { createCoffer } from "@coffer/client";
import { createCoffer as createWebCoffer } from "@coffer/client/web";

const options = { url: process.env.COFFER_URL, token: process.env.COFFER_TOKEN, projectId: process.env.COFFER_PROJECT };
const db = await createCoffer(options).access("/app/db");
const apiKey = await createWebCoffer(options).access("/app/api-key");
// The server's test helpers are a workspace-only entry: no installed file behind it.
const testing = await import("@coffer/server/testing").then(() => "loaded", (e) => e.code);
console.log(JSON.stringify({ password: db.json().password, apiKey: apiKey.text(), testing, from: import.meta.resolve("@coffer/client") }));
`,
    );
    const env = cleanEnv({
      ...trace,
      COFFER_URL: server.url,
      COFFER_TOKEN: sidecarToken,
      COFFER_PROJECT: projectId,
    });
    const out = JSON.parse(
      (await run(process.execPath, [script], { cwd: app, env })).stdout,
    ) as Record<string, string>;
    if (out.password !== "p-2" || out.apiKey !== "k-2") {
      throw new Error(`read-secret.mjs read ${JSON.stringify(out)}`);
    }
    if (out.testing !== "ERR_PACKAGE_PATH_NOT_EXPORTED") {
      throw new Error(`@coffer/server/testing, imported outside the workspace: ${out.testing}`);
    }
    if (!out.from?.startsWith(`file://${app}/node_modules/@coffer/client/`)) {
      throw new Error(`@coffer/client resolved to ${out.from}`);
    }
    console.log(
      `  read p-2 and k-2; @coffer/server/testing not exported; @coffer/client is ${out.from}`,
    );
  });

  // 8. TypeScript consumers.
  await step(
    "type-check a TypeScript consumer (node16 and bundler; Node and web entries)",
    async () => {
      for (const checked of await typeCheckConsumers(app)) console.log(`  ${checked}`);
    },
  );

  // 9. The protos, as another language's generator reads them.
  await step("@coffer/api's .proto files compile on their own (buf build)", async () => {
    const image = path.join(root, "api-image.json");
    await run(bin("buf"), ["build", "node_modules/@coffer/api/proto", "-o", image], {
      cwd: app,
      env: cleanEnv(),
    });
    const { file } = JSON.parse(await readFile(image, "utf8")) as {
      file: { name: string; service?: { name: string }[] }[];
    };
    const services = file.flatMap((f) => (f.service ?? []).map((s) => s.name));
    for (const wanted of ["SecretService", "AdminService", "Health", "ServerReflection"]) {
      if (!services.includes(wanted))
        throw new Error(`the protos define no ${wanted}: ${services}`);
    }
    console.log(`  ${file.length} files; services ${services.join(", ")}`);
  });

  // 10. The browser bundle.
  await step("bundle @coffer/client/web for the browser with esbuild", async () => {
    const bundle = await bundleWebClient(app);
    console.log(
      `  ${(bundle.bytes / 1000).toFixed(1)} kB from ${bundle.inputs} files; no Node built-in`,
    );
  });

  await step("stop the server (SIGTERM drains it: exit code 0)", async () => {
    const code = await server.process.stop(30_000);
    if (code !== 0)
      throw new Error(`coffer-server exited ${code}; its output:\n${server.process.output}`);
  });

  await step("every module the processes resolved is a file of the temporary folder", async () => {
    const files = await checkTrace(traceLog, root);
    console.log(`  ${files} files resolved, none in ${REPO_ROOT}`);
  });

  console.log(`\nrelease test: passed in ${elapsed()}`);
  for (const p of manifest.packages) {
    console.log(
      `  ${p.name}@${version}: ${(p.size / 1000).toFixed(1)} kB packed, ${(p.unpackedSize / 1000).toFixed(1)} kB unpacked`,
    );
  }
} catch (err) {
  console.error(`\nrelease test: FAILED after ${elapsed()}\n${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  await Promise.all(services.map((s) => s.stop(5_000)));
  if (options.keep) console.log(`kept ${root}`);
  else await rm(root, { recursive: true, force: true });
}
