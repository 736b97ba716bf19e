import { mkdir, writeFile } from "node:fs/promises";
import { builtinModules, createRequire } from "node:module";
import path from "node:path";
import { cleanEnv, isInside, run } from "./harness.ts";

/**
 * The installed client as its users meet it: a TypeScript project that
 * type-checks against it, and a browser bundle of its web entry.
 */

// A service's code, on Node. The @ts-expect-error lines fail the check if
// the declarations did not load (everything would be `any`, and nothing
// would be an error to expect).
const NODE_CONSUMER = `import { createCoffer, SecretType, type Coffer } from "@coffer/client";
import { parseDuration } from "@coffer/api/duration";

const coffer: Coffer = createCoffer({ url: "http://127.0.0.1:8080", token: "t", projectId: "p" });
const db = await coffer.access("/prod/db", { type: SecretType.DATABASE_CREDENTIALS });
const host: string = db.json().host;
const ms: number | undefined = parseDuration("1h30m");
// @ts-expect-error url is a string
createCoffer({ url: 8080 });
// @ts-expect-error a database credential has no field "nope"
db.json().nope;
console.log(host, ms);
`;

// A browser's code: no Node types at all (types: []), the DOM library.
const WEB_CONSUMER = `import { createCoffer, type Coffer } from "@coffer/client/web";

const coffer: Coffer = createCoffer({ url: location.origin, token: "t", projectId: "p" });
const text: string = (await coffer.access("/prod/api-key")).text();
// @ts-expect-error the browser client has no gRPC protocol
createCoffer({ url: location.origin, protocol: "grpc" });
document.title = text;
`;

/**
 * The programs type-checked: each entry's consumer under each module
 * resolution. The Node one has the DOM library too: connect-es's
 * declarations name fetch's `HeadersInit`, which @types/node does not
 * declare (connectrpc/connect-es#481); the client's README says so.
 */
const PROGRAMS = [
  { file: "node.ts", types: ["node"], lib: ["es2023", "dom"] },
  { file: "web.ts", types: [], lib: ["es2023", "dom"] },
].flatMap((p) =>
  [
    { moduleResolution: "node16", module: "node16" },
    { moduleResolution: "bundler", module: "esnext" },
  ].map((r) => ({ ...p, ...r })),
);

/**
 * Type-checks the consumers with the TypeScript installed in `app`, under
 * `moduleResolution` node16 and bundler, libraries checked too
 * (skipLibCheck off: the package's declarations must hold together).
 * Returns the configurations checked.
 */
export async function typeCheckConsumers(app: string): Promise<string[]> {
  const folder = path.join(app, "consumer");
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, "node.ts"), NODE_CONSUMER);
  await writeFile(path.join(folder, "web.ts"), WEB_CONSUMER);
  const tsc = path.join(app, "node_modules/typescript/bin/tsc");
  const checked: string[] = [];
  for (const program of PROGRAMS) {
    const name = `${path.basename(program.file, ".ts")}-${program.moduleResolution}`;
    const config = path.join(folder, `tsconfig.${name}.json`);
    const compilerOptions = {
      target: "es2022",
      module: program.module,
      moduleResolution: program.moduleResolution,
      lib: program.lib,
      types: program.types,
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      // Every file of the program, TypeScript's own libraries included,
      // must come from the temporary folder.
      listFiles: true,
    };
    await writeFile(config, JSON.stringify({ compilerOptions, files: [program.file] }, null, 2));
    const result = await run(process.execPath, [tsc, "-p", config], {
      cwd: folder,
      env: cleanEnv(),
      allowFailure: true,
    });
    const errors = result.stdout.split("\n").filter((l) => /error TS\d+/.test(l));
    if (result.code !== 0 || errors.length > 0) {
      throw new Error(
        `tsc -p ${config} failed:\n${errors.join("\n") || result.stdout.slice(-4000)}`,
      );
    }
    const files = result.stdout.split("\n").filter((l) => l.startsWith("/"));
    const coffer = files.filter((f) => f.includes("/node_modules/@coffer/"));
    if (coffer.length === 0) throw new Error(`${name}: no declaration of @coffer/client was read`);
    const outside = files.filter((f) => !isInside(f, app));
    if (outside.length > 0) {
      throw new Error(`${name} read files outside ${app}: ${outside.join(", ")}`);
    }
    checked.push(`${name}: ${files.length} files, ${coffer.length} of them @coffer declarations`);
  }
  return checked;
}

/** The part of esbuild's API the bundle uses. */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<{
    outputFiles: { text: string }[];
    metafile: { inputs: Record<string, unknown> };
  }>;
}

/** What {@link bundleWebClient} found. */
export interface WebBundle {
  bytes: number;
  inputs: number;
}

/**
 * Bundles `@coffer/client/web` for the browser with the esbuild installed in
 * `app`. esbuild refuses a Node built-in on the browser platform, so the
 * build failing is the first check; the output is then searched for any
 * `node:` or built-in import or require, and every input must be a file of
 * `app` (none of the Node transports).
 */
export async function bundleWebClient(app: string): Promise<WebBundle> {
  const entry = path.join(app, "web-entry.mjs");
  await writeFile(
    entry,
    `import { createCoffer } from "@coffer/client/web";\n` +
      `globalThis.coffer = createCoffer({ url: location.origin, token: "t", projectId: "p" });\n`,
  );
  // The esbuild installed in `app` (the test workspace does not depend on one).
  const esbuild = createRequire(path.join(app, "package.json"))("esbuild") as Esbuild;
  const result = await esbuild.build({
    entryPoints: [entry],
    absWorkingDir: app,
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
  const code = result.outputFiles[0]?.text ?? "";
  const builtins = builtinModules.map((m) => m.replace(/[/]/g, "\\/")).join("|");
  const nodeImport = new RegExp(
    `(?:from|import|require)\\s*\\(?\\s*["'\`](?:node:[\\w/]+|(?:${builtins})(?:/[\\w/]*)?)["'\`]`,
  );
  const found = nodeImport.exec(code) ?? /["'`]node:[a-z_/]+["'`]/.exec(code);
  if (found) throw new Error(`the browser bundle imports a Node built-in: ${found[0]}`);
  const inputs = Object.keys(result.metafile.inputs).map((f) => path.resolve(app, f));
  const outside = inputs.filter((f) => !isInside(f, app));
  if (outside.length > 0)
    throw new Error(`the bundle took files outside ${app}: ${outside.join(", ")}`);
  const nodeOnly = inputs.filter((f) => /connect-node|grpc-js|@coffer\/server/.test(f));
  if (nodeOnly.length > 0) throw new Error(`the browser bundle holds ${nodeOnly.join(", ")}`);
  if (!inputs.some((f) => f.includes("/@coffer/client/dist/web.js"))) {
    throw new Error("the bundle does not hold @coffer/client's web entry");
  }
  return { bytes: Buffer.byteLength(code), inputs: inputs.length };
}
