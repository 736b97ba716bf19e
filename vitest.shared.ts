/**
 * Every package's tests import the workspace's own packages from their
 * TypeScript sources (the `@coffer/source` export condition), not from the
 * compiled dist/ that Node and other projects load: an edit is seen at once,
 * with no build in between. The other three are Vite's own defaults for
 * code run in Node (`defaultServerConditions`), which a list given here
 * replaces.
 */
const conditions = ["@coffer/source", "module", "node", "development|production"];

export const sourceConditions = {
  resolve: { conditions },
  ssr: { resolve: { conditions } },
};
