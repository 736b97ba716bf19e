/**
 * Every package's tests import the workspace's own packages from their
 * TypeScript sources (the `@coffer/source` export condition), not from the
 * compiled dist/ that Node and other projects load: an edit is seen at once,
 * with no build in between. The other three are Vite's own defaults for
 * code run in Node (`defaultServerConditions`), which a list given here
 * replaces.
 */
const conditions = ["@coffer/source", "module", "node", "development|production"];

/**
 * Vitest runs its global setup in an environment of its own (`__vitest__`),
 * which since Vite 8.4 no longer inherits the top-level `resolve`: it is
 * named here too, or the setup cannot resolve a package's `#imports`.
 */
export const sourceConditions = {
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  environments: { __vitest__: { resolve: { conditions } } },
};
