/**
 * The bulk-import rules, as the CLI uses them (`coffer import`, `coffer
 * export`): reading a .env, JSON or YAML file into entries, writing a .env
 * file that reads back the same, and planning an import into a folder. The
 * console's screen and the CLI share these modules so that a file means the
 * same thing in both; nothing here imports React or the browser.
 *
 * Exported as `@coffer/console/import` with the `@coffer/source` condition
 * only: the CLI's bundle is built from sources, and the console ships its
 * built app, not this module.
 */

export {
  KIND_LABELS,
  kindOfSecretType,
  secretTypeOf,
  type ValueKind,
} from "../secret-value/value-draft.ts";
export {
  type EnvEntry,
  EnvSyntaxError,
  formatDotenv,
  isDotenvKey,
  parseDotenv,
  quoteDotenvValue,
} from "./dotenv.ts";
export {
  describe,
  formatOfName,
  guessFormat,
  type ImportEntry,
  ImportFileError,
  type ImportFormat,
  MAX_IMPORT_FILE_BYTES,
  parseImportFile,
} from "./parse.ts";
export {
  type ExistingSecret,
  type PlanRow,
  planImport,
  type RowAction,
  rowsToWrite,
  typeOfValue,
} from "./plan.ts";
