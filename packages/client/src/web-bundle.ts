import { isBuiltin } from "node:module";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

/** What {@link bundleForBrowser} produced. */
export interface BrowserBundle {
  /** The ES module, as a browser would load it. */
  code: string;
  /** Every Node built-in some module imported, with the importer. */
  nodeBuiltins: string[];
  /** The files that went into the bundle. */
  inputs: string[];
}

/**
 * Bundles an entry of this package for the browser with esbuild, recording
 * (instead of failing on) every Node built-in it reaches, so that a test can
 * name them all. Test support, not part of the package's API.
 */
export async function bundleForBrowser(entry: "web.ts" | "index.ts"): Promise<BrowserBundle> {
  const nodeBuiltins: string[] = [];
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(new URL(`./${entry}`, import.meta.url))],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
    plugins: [
      {
        name: "record-node-builtins",
        setup(build) {
          build.onResolve({ filter: /.*/ }, (args) => {
            if (!isBuiltin(args.path)) return undefined;
            nodeBuiltins.push(`${args.path} (imported by ${args.importer})`);
            return { path: args.path, external: true };
          });
        },
      },
    ],
  });
  const [output] = result.outputFiles;
  if (output === undefined) throw new Error("esbuild wrote nothing");
  return { code: output.text, nodeBuiltins, inputs: Object.keys(result.metafile.inputs) };
}
