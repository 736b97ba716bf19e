import { parseArgs } from "node:util";
import type { Context } from "./context.ts";
import { type ExitCode, UsageError } from "./errors.ts";

/**
 * The command tree and its parser. Options are parsed by node:util
 * `parseArgs` (in its token mode, so that an unknown flag or a missing value
 * can be named in our own words instead of Node's); the tree, the help and
 * the "did you mean" suggestions are ours. Not commander: it takes the next
 * argument as a flag's value even when it is another flag (`--description
 * --clear-tags` sets the description), and flags before the command word
 * would have to be the program's, accepted by every command, even those
 * that have no use for them.
 */

/** Where a flag is listed in help. */
export type OptionGroup = "command" | "connection" | "output";

/** One flag of a command. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** May be given several times; the value is then a list. */
  multiple?: boolean;
  /** The value's placeholder in help, e.g. "FILE". */
  value?: string;
  help: string;
  group?: OptionGroup;
  /**
   * A string flag whose value may be left out (`--generate` or `--generate
   * 40`): the next argument is its value only when it matches this pattern;
   * a bare flag's value is "".
   */
  optionalValue?: RegExp;
}

export type OptionSet = Record<string, OptionSpec>;

/** The parsed value of one flag. */
export type ValueOf<S extends OptionSpec> = S["type"] extends "boolean"
  ? boolean
  : S["multiple"] extends true
    ? string[]
    : string;

/** The parsed flags of a command: absent flags are undefined. */
export type Values<O extends OptionSet> = { [K in keyof O]?: ValueOf<O[K]> };

/** One positional argument of a command. */
export interface ArgSpec {
  name: string;
  help: string;
  optional?: boolean;
  /** The last argument only: it takes every argument left (`-- COMMAND ARGS...`). */
  variadic?: boolean;
}

/** What a command's implementation receives. */
export interface Input<O extends OptionSet> {
  values: Values<O>;
  /** Positional arguments, in order (optional ones may be missing). */
  args: string[];
  /** The command as typed, e.g. "coffer version access". */
  command: string;
}

/**
 * What a command is, for the parser and the help: its flags, arguments and
 * texts, static data. What it does is elsewhere (see {@link commands}).
 */
export interface CommandSpec<O extends OptionSet = OptionSet> {
  summary: string;
  description?: string;
  args?: readonly ArgSpec[];
  options: O;
  examples?: readonly string[];
}

/** What a command does: returns the exit code (undefined: 0). */
export type Run<S extends { options: OptionSet }> = (
  ctx: Context,
  input: Input<S["options"]>,
) => Promise<ExitCode | undefined>;

/** The implementations of a set of command specs, by name. */
export type Runs<S extends Record<string, CommandSpec>> = { [K in keyof S]: Run<S[K]> };

/** A leaf of the tree: something that runs. */
export interface Command extends CommandSpec {
  kind: "command";
  name: string;
  /** Imports the command's implementation, which only running it needs. */
  load(): Promise<Run<CommandSpec>>;
}

/** A group of commands, e.g. `coffer secret`. */
export interface Group {
  kind: "group";
  name: string;
  summary: string;
  description?: string;
  children: Node[];
  /** Printed after the command list of the group's help. */
  footer?: string;
}

export type Node = Command | Group;

/**
 * Declares commands, named by the keys of `specs`, whose implementations
 * `load` imports when one of them runs. The tree (and so the parser, `--help`
 * and `--version`) holds only the specs: a module that calls a server, and
 * Connect, protobuf and the generated API with it, is loaded by the command
 * that needs it, never by the others.
 */
export function commands<S extends Record<string, CommandSpec>>(
  specs: S,
  load: () => Promise<Runs<S>>,
): { [K in keyof S]: Command } {
  const out: Record<string, Command> = {};
  for (const [name, spec] of Object.entries(specs)) {
    out[name] = {
      kind: "command",
      name,
      ...spec,
      load: async () => (await load())[name] as Run<CommandSpec>,
    };
  }
  return out as { [K in keyof S]: Command };
}

/** Declares a group. */
export function group(spec: Omit<Group, "kind">): Group {
  return { kind: "group", ...spec };
}

/** What the command line asked for. */
export type Parsed =
  | { kind: "run"; command: Command; path: string[]; values: Values<OptionSet>; args: string[] }
  | { kind: "help"; node: Node; path: string[] }
  /** A group named without a command: its help goes to stderr, exit 2. */
  | { kind: "incomplete"; node: Group; path: string[] }
  | { kind: "version" };

const HELP: OptionSpec = { type: "boolean", short: "h", help: "show this help" };

/**
 * Parses a command line against the tree. Flags may come before, between or
 * after the command words (`coffer -o json secret list` and `coffer secret
 * list -o json` are the same); `globals` tells which flags take a value
 * before the command is known.
 *
 * @throws UsageError for an unknown command or flag, a missing or extra
 * argument, a flag without its value, or a value given to a switch.
 */
export function parseCommandLine(root: Group, argv: string[], globals: OptionSet): Parsed {
  const path: string[] = [root.name];
  let node: Node = root;
  let help = false;
  const rest: string[] = [];
  let i = 0;
  for (; i < argv.length && node.kind === "group"; i++) {
    const arg = argv[i] as string;
    if (arg === "--") break;
    if (arg.startsWith("-") && arg !== "-") {
      if (arg === "-h" || arg === "--help") help = true;
      else if (arg === "--version" && node === root) return { kind: "version" };
      else {
        rest.push(arg);
        if (takesValue(arg, globals) && i + 1 < argv.length) rest.push(argv[++i] as string);
      }
      continue;
    }
    if (arg === "help" && node === root) {
      help = true;
      continue;
    }
    const current: Group = node;
    const child: Node | undefined = current.children.find((c) => c.name === arg);
    if (child === undefined) {
      const names = current.children.map((c) => c.name);
      throw new UsageError(
        `unknown command "${arg}" for "${path.join(" ")}"${suggest(arg, names)}`,
        `see "${path.join(" ")} --help"`,
      );
    }
    path.push(arg);
    node = child;
  }
  if (node.kind === "group") {
    return help ? { kind: "help", node, path } : { kind: "incomplete", node, path };
  }
  rest.push(...argv.slice(i));
  const leaf: Command = node;
  const options: OptionSet = { ...leaf.options, help: HELP };
  const { tokens } = parseArgs({
    args: rest,
    options: toParseArgsOptions(options),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: Record<string, string | boolean | string[]> = {};
  const args: string[] = [];
  const name = path.join(" ");
  const usage = (message: string, hint?: string) =>
    new UsageError(message, [hint, `see "${name} --help"`].filter(Boolean).join("\n"));
  // Positionals that an optional-valued flag took as its value.
  const taken = new Set<number>();
  for (const [t, token] of tokens.entries()) {
    if (token.kind === "positional") {
      if (!taken.has(t)) args.push(token.value);
      continue;
    }
    if (token.kind === "option-terminator") continue;
    const spec = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (spec === undefined) {
      const flags = Object.entries(options).map(([n]) => `--${n}`);
      const variadic = leaf.args?.at(-1);
      throw usage(
        `unknown flag ${token.rawName} for "${name}"${suggest(`--${token.name}`, flags)}`,
        variadic?.variadic
          ? `${variadic.name}'s own flags go after "--": ${name} [flags] -- ${variadic.name}...`
          : undefined,
      );
    }
    const flag = token.rawName.startsWith("--") ? token.rawName : `-${spec.short}`;
    if (spec.optionalValue !== undefined) {
      const next = tokens[t + 1];
      let value = token.value ?? "";
      if (
        token.value === undefined &&
        next?.kind === "positional" &&
        spec.optionalValue.test(next.value)
      ) {
        value = next.value;
        taken.add(t + 1);
      }
      values[token.name] = value;
      continue;
    }
    if (spec.type === "boolean") {
      if (token.value !== undefined) throw usage(`${flag} takes no value`);
      if (token.name === "help") help = true;
      else values[token.name] = true;
      continue;
    }
    const value = token.value;
    if (value === undefined) {
      throw usage(`${flag} needs a value${spec.value ? ` (${spec.value})` : ""}`);
    }
    if (!token.inlineValue && value.startsWith("-") && value !== "-") {
      throw usage(
        `${flag} needs a value, but the next argument is "${value}"`,
        `to pass a value that starts with "-", write ${flag}=VALUE`,
      );
    }
    if (spec.multiple) {
      const list = values[token.name];
      values[token.name] = Array.isArray(list) ? [...list, value] : [value];
    } else {
      values[token.name] = value;
    }
  }
  if (help) return { kind: "help", node: leaf, path };
  const specs = leaf.args ?? [];
  if (args.length > specs.length && !specs[specs.length - 1]?.variadic) {
    const extra = args[specs.length] as string;
    throw usage(
      `unexpected argument "${extra}" for "${name}"${extra.startsWith("-") ? ` (flags after "--" are arguments)` : ""}`,
    );
  }
  const missing = specs.slice(args.length).find((a) => !a.optional);
  if (missing !== undefined) {
    throw usage(`missing ${missing.name} (${missing.help}) for "${name}"`);
  }
  return { kind: "run", command: leaf, path, values: values as Values<OptionSet>, args };
}

/** Whether a flag seen before the command word consumes the next argument. */
function takesValue(arg: string, globals: OptionSet): boolean {
  if (arg.includes("=")) return false;
  if (arg.startsWith("--")) return globals[arg.slice(2)]?.type === "string";
  if (arg.length !== 2) return false; // -ojson
  return Object.values(globals).some((o) => o.short === arg[1] && o.type === "string");
}

function toParseArgsOptions(
  options: OptionSet,
): Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> {
  const out: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> =
    {};
  for (const [name, o] of Object.entries(options)) {
    out[name] = {
      // Parsed as a switch, so that parseArgs never takes the next argument:
      // the loop above decides whether it is the value.
      type: o.optionalValue !== undefined ? "boolean" : o.type,
      ...(o.short !== undefined && { short: o.short }),
      ...(o.multiple && { multiple: true }),
    };
  }
  return out;
}

/** `; did you mean "x"?` for the closest candidate, or "". */
export function suggest(word: string, candidates: string[]): string {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 3 ? 1 : distance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.floor(word.length / 3));
  return best !== undefined && bestDistance <= limit ? `; did you mean "${best}"?` : "";
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

const GROUP_TITLES: Record<OptionGroup, string> = {
  command: "Flags",
  connection: "Connection flags",
  output: "Output flags",
};

/** The help text of a command or group. */
export function renderHelp(node: Node, path: string[]): string {
  const name = path.join(" ");
  const out: string[] = [];
  if (node.kind === "group") {
    out.push(`${name}: ${node.summary}`, "", "Usage:", `  ${name} COMMAND [flags]`, "");
    if (node.description) out.push(node.description.trimEnd(), "");
    out.push("Commands:");
    const width = Math.max(...node.children.map((c) => c.name.length));
    for (const child of node.children) out.push(`  ${child.name.padEnd(width)}  ${child.summary}`);
    out.push("", `Run "${name} COMMAND --help" for a command's arguments and flags.`);
    if (node.footer) out.push("", node.footer.trimEnd());
    return `${out.join("\n")}\n`;
  }
  const args = (node.args ?? [])
    .map((a) => (a.optional ? `[${a.name}]` : a.name) + (a.variadic ? "..." : ""))
    .join(" ");
  out.push(
    `${name}: ${node.summary}`,
    "",
    "Usage:",
    // A variadic last argument takes flags too, once after "--".
    node.args?.at(-1)?.variadic
      ? `  ${name} [flags] -- ${args}`
      : `  ${[name, args, "[flags]"].filter(Boolean).join(" ")}`,
  );
  if (node.description) out.push("", node.description.trimEnd());
  if (node.args && node.args.length > 0) {
    out.push("", "Arguments:");
    const width = Math.max(...node.args.map((a) => a.name.length));
    for (const a of node.args) out.push(`  ${a.name.padEnd(width)}  ${a.help}`);
  }
  const entries = Object.entries({ ...node.options, help: HELP });
  for (const g of ["command", "output", "connection"] as const) {
    const rows = entries
      .filter(([, o]) => (o.group ?? "command") === g)
      .map(([n, o]) => {
        const short = o.short ? `-${o.short}, ` : "    ";
        const placeholder = o.value ?? "VALUE";
        const value =
          o.type !== "string" ? "" : o.optionalValue ? ` [${placeholder}]` : ` ${placeholder}`;
        return [`${short}--${n}${value}`, o.multiple ? `${o.help} (repeatable)` : o.help] as const;
      });
    if (rows.length === 0) continue;
    const width = Math.max(...rows.map(([f]) => f.length));
    out.push("", `${GROUP_TITLES[g]}:`);
    for (const [flag, help] of rows) out.push(`  ${flag.padEnd(width)}  ${help}`);
  }
  if (node.examples && node.examples.length > 0) {
    out.push("", "Examples:", ...node.examples.map((e) => `  ${e}`));
  }
  return `${out.join("\n")}\n`;
}
