import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { setFlagsFromString } from "node:v8";
import { inject } from "vitest";
import type { PgliteTemplate } from "../db/client.ts";

/**
 * The template databases of a test run: one migrated, seeded database per
 * backend, made once by vitest's globalSetup (global-setup.ts), that every
 * test database starts as. PGlite loads the template's data folder instead
 * of running initdb (seconds of WebAssembly per database); Postgres copies
 * the template (CREATE DATABASE ... TEMPLATE) instead of migrating.
 */
export interface Templates {
  /** A tar of the PGlite template's data folder (PGlite's dumpDataDir). */
  pgliteDataDir: string;
  /** The Postgres template's database name, when TEST_DATABASE_URL is set. */
  postgres?: string;
}

declare module "vitest" {
  interface ProvidedContext {
    cofferTemplates: Templates;
  }
}

/** What global-setup.ts names a Postgres template; nothing else is copied or dropped as one. */
const POSTGRES_TEMPLATE_NAME = /^coffer_template_[0-9a-f]+$/;

/**
 * This run's templates; undefined when the package's vitest config has no
 * global-setup.ts, and then every database is made from scratch.
 */
function templates(): Templates | undefined {
  return inject("cofferTemplates");
}

let pglite: PgliteTemplate | undefined;

/**
 * The PGlite template, read once per test file (vitest isolates files), with
 * PGlite's WebAssembly compiled once for every database made from it.
 */
export function pgliteTemplate(): PgliteTemplate | undefined {
  const file = templates()?.pgliteDataDir;
  if (file === undefined) return undefined;
  pglite ??= loadPgliteTemplate(file);
  return pglite;
}

/** Reads a PGlite template from a tar of its data folder, and compiles PGlite for it. */
export function loadPgliteTemplate(file: string): PgliteTemplate {
  const dist = path.dirname(createRequire(import.meta.url).resolve("@electric-sql/pglite"));
  // As openDatabase compiles it (db/client.ts): baseline code only.
  setFlagsFromString("--liftoff-only");
  return {
    dataDir: new Blob([readFileSync(file)]),
    wasmModule: new WebAssembly.Module(readFileSync(path.join(dist, "pglite.wasm"))),
    fsBundle: new Blob([readFileSync(path.join(dist, "pglite.data"))]),
  };
}

/** The Postgres template's database name, when there is one. */
export function postgresTemplate(): string | undefined {
  const name = templates()?.postgres;
  if (name !== undefined && !POSTGRES_TEMPLATE_NAME.test(name)) {
    throw new Error(`refusing ${name} as a template`);
  }
  return name;
}
