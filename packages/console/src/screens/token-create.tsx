import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AdminService, type Project, Role, type Token, TokenFormat } from "@coffer/api";
import { useMutation } from "@connectrpc/connect-query";
import { type FormEvent, useId, useState } from "react";
import { describeError, type Problem } from "../api/errors.ts";
import { CopiedStatus, useClipboard } from "../ui/clipboard.tsx";
import { ProblemMessage } from "../ui/problem.tsx";
import { ROLES } from "./token-roles.ts";

const DAY_MS = 86_400_000;

/** The expiry choices, as most consoles offer them. */
export const EXPIRIES = [
  { key: "7d", label: "7 days", ms: 7 * DAY_MS },
  { key: "30d", label: "30 days", ms: 30 * DAY_MS },
  { key: "90d", label: "90 days", ms: 90 * DAY_MS },
  { key: "365d", label: "1 year", ms: 365 * DAY_MS },
  { key: "never", label: "Never", ms: undefined },
  { key: "custom", label: "On a date…", ms: undefined },
] as const;
type ExpiryKey = (typeof EXPIRIES)[number]["key"];

/** The key formats, Coffer's own first (the default). */
export const FORMATS = [
  { format: TokenFormat.COFFER, label: "Coffer token" },
  { format: TokenFormat.SCALEWAY, label: "Scaleway-compatible" },
] as const;

/** A grant row of the form: the project ("" for every project), the role's key, the folder. */
interface GrantRow {
  projectId: string;
  role: Role;
  pathPrefix: string;
}

/** The path rule the server applies to a prefix, checked as you type. */
export function prefixProblem(prefix: string): string | undefined {
  const p = prefix.trim();
  if (p === "" || p === "/") return undefined;
  if (!p.startsWith("/"))
    return 'Must start with "/" (e.g. /prod), or stay empty for every folder.';
  if (/\/\//.test(p.replace(/\/$/, "") || "/")) return 'Must not contain empty segments ("//").';
  return undefined;
}

/**
 * Creates a token with its grants, expiry and key format. Its value is
 * shown once, here, with Copy: only its hash is stored on the server. The
 * value lives in this component's state until Done (or the page is left):
 * never in the query cache, a URL or storage.
 */
export function CreateToken({
  projectId,
  projects,
  globalAdmin,
  onCreated,
}: {
  /** The project the screen is in: the first grant's, by default. */
  projectId: string;
  /** The projects the caller may grant roles on. */
  projects: readonly Project[];
  /** Whether the caller may grant the global admin role. */
  globalAdmin: boolean;
  onCreated?: (token: Token) => void;
}) {
  const id = useId();
  const [name, setName] = useState("");
  const [grants, setGrants] = useState<GrantRow[]>([
    { projectId, role: Role.READ_ONLY, pathPrefix: "" },
  ]);
  const [expiry, setExpiry] = useState<ExpiryKey>("90d");
  const [customDate, setCustomDate] = useState("");
  const [format, setFormat] = useState<TokenFormat>(TokenFormat.COFFER);
  const [localProblem, setLocalProblem] = useState<string | undefined>();
  const [created, setCreated] = useState<
    { token: Token; value: string; accessKey: string } | undefined
  >();
  const create = useMutation(AdminService.method.createToken, {
    // The answer holds the value: copied into this component's state, then
    // the mutation forgets it at once.
    gcTime: 0,
    onSuccess: (res) => {
      if (res.token !== undefined) {
        setCreated({ token: res.token, value: res.value, accessKey: res.accessKey });
        onCreated?.(res.token);
      }
      create.reset();
    },
  });
  const problem = create.error ? describeError(create.error) : undefined;

  const projectChoices = projects.some((p) => p.id === projectId)
    ? projects
    : [{ id: projectId, name: projectId.slice(0, 8) } as Project, ...projects];

  function update(i: number, changes: Partial<GrantRow>) {
    setGrants((rows) => rows.map((r, j) => (j === i ? { ...r, ...changes } : r)));
  }

  function expiresAt(): Date | undefined | "invalid" {
    if (expiry === "never") return undefined;
    if (expiry === "custom") {
      const at = new Date(customDate);
      return Number.isNaN(at.getTime()) || at.getTime() <= Date.now() ? "invalid" : at;
    }
    const choice = EXPIRIES.find((e) => e.key === expiry);
    return new Date(Date.now() + (choice?.ms ?? 0));
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    create.reset();
    setLocalProblem(undefined);
    const at = expiresAt();
    if (at === "invalid") {
      setLocalProblem("Choose an expiry date in the future.");
      return;
    }
    if (grants.some((g) => prefixProblem(g.pathPrefix) !== undefined)) return;
    create.mutate({
      name: name.trim(),
      grants: grants.map((g) => ({
        projectId: g.projectId,
        role: g.projectId === "" ? Role.ADMIN : g.role,
        pathPrefix: g.projectId === "" ? "/" : g.pathPrefix.trim() || "/",
      })),
      ...(at !== undefined && { expiresAt: timestampFromDate(at) }),
      format,
    });
  }

  if (created !== undefined) {
    return <CreatedToken {...created} onDone={() => setCreated(undefined)} />;
  }

  const nameError = violation(problem, "name");
  const expiryError =
    localProblem ?? violation(problem, "expires_at") ?? violation(problem, "grants");
  const shownAlone =
    problem !== undefined &&
    (problem.field === undefined ||
      !(
        problem.field === "name" ||
        problem.field === "expires_at" ||
        problem.field === "grants" ||
        problem.field.startsWith("grants[")
      ));

  return (
    <form className="card token-form" onSubmit={submit} aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`} className="card-title">
        Create a token
      </h2>
      <div className="field">
        <label htmlFor={`${id}-name`}>Name</label>
        <input
          id={`${id}-name`}
          value={name}
          maxLength={255}
          required
          onChange={(e) => setName(e.target.value)}
          aria-invalid={nameError !== undefined}
          aria-describedby={`${id}-name-help${nameError ? ` ${id}-name-error` : ""}`}
        />
        <p id={`${id}-name-help`} className="hint">
          For people: what uses it (e.g. "billing API, production").
        </p>
        {nameError && (
          <p id={`${id}-name-error`} className="field-error">
            {nameError}
          </p>
        )}
      </div>

      <fieldset className="grants">
        <legend>Grants</legend>
        <p className="hint">
          Each grant gives a role on a project, in a folder and every folder below it (empty: the
          whole project). The token may do what any of its grants allows.
        </p>
        {grants.map((g, i) => (
          <GrantEditor
            // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity but their place
            key={i}
            index={i}
            grant={g}
            projects={projectChoices}
            globalAdmin={globalAdmin}
            problem={problem}
            removable={grants.length > 1}
            onChange={(changes) => update(i, changes)}
            onRemove={() => setGrants((rows) => rows.filter((_, j) => j !== i))}
          />
        ))}
        <button
          type="button"
          className="btn btn-small"
          onClick={() =>
            setGrants((rows) => [...rows, { projectId, role: Role.READ_ONLY, pathPrefix: "" }])
          }
        >
          + Add a grant
        </button>
      </fieldset>

      <div className="field field-inline">
        <label htmlFor={`${id}-expiry`}>Expires</label>
        <select
          id={`${id}-expiry`}
          value={expiry}
          onChange={(e) => setExpiry(e.target.value as ExpiryKey)}
          aria-invalid={expiryError !== undefined}
          aria-describedby={expiryError ? `${id}-expiry-error` : `${id}-expiry-help`}
        >
          {EXPIRIES.map((e) => (
            <option key={e.key} value={e.key}>
              {e.label}
            </option>
          ))}
        </select>
        {expiry === "custom" && (
          <>
            <label htmlFor={`${id}-expiry-date`} className="visually-hidden">
              Expiry date
            </label>
            <input
              id={`${id}-expiry-date`}
              type="datetime-local"
              value={customDate}
              onChange={(e) => setCustomDate(e.target.value)}
            />
          </>
        )}
        <p id={`${id}-expiry-help`} className="hint">
          A token cannot outlive the token that creates it.
        </p>
        {expiryError && (
          <p id={`${id}-expiry-error`} className="field-error">
            {expiryError}
          </p>
        )}
      </div>

      <div className="field field-inline">
        <label htmlFor={`${id}-format`}>Key format</label>
        <select
          id={`${id}-format`}
          value={format}
          onChange={(e) => setFormat(Number(e.target.value) as TokenFormat)}
          aria-describedby={`${id}-format-help`}
        >
          {FORMATS.map((f) => (
            <option key={f.format} value={f.format}>
              {f.label}
            </option>
          ))}
        </select>
        <p id={`${id}-format-help`} className="hint">
          {format === TokenFormat.SCALEWAY
            ? "For Scaleway's SDKs, scw CLI and Terraform: an access key and a secret key. Coffer's own clients take the secret key as a token."
            : "A coffer_… token, for Coffer's CLI, agent, SDK and console."}
        </p>
      </div>

      {shownAlone && <ProblemMessage error={create.error} />}
      <button
        type="submit"
        className="btn btn-primary"
        disabled={create.isPending || name.trim() === ""}
      >
        Create token
      </button>
    </form>
  );
}

/** The server's rule for one field, as a sentence. */
function violation(problem: Problem | undefined, field: string): string | undefined {
  const rule = problem?.violations.get(field);
  if (rule === undefined) return undefined;
  const s = rule.charAt(0).toUpperCase() + rule.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

function GrantEditor({
  index,
  grant,
  projects,
  globalAdmin,
  problem,
  removable,
  onChange,
  onRemove,
}: {
  index: number;
  grant: GrantRow;
  projects: readonly Project[];
  globalAdmin: boolean;
  problem: Problem | undefined;
  removable: boolean;
  onChange: (changes: Partial<GrantRow>) => void;
  onRemove: () => void;
}) {
  const id = useId();
  const n = index + 1;
  const field = (name: string) => violation(problem, `grants[${index}].${name}`);
  const roleError = field("role");
  const projectError = field("project_id");
  const prefixError = prefixProblem(grant.pathPrefix) ?? field("path_prefix");
  const global = grant.projectId === "";
  const roleHelp = ROLES.find((r) => r.role === (global ? Role.ADMIN : grant.role))?.help;
  return (
    <div className="grant-row">
      <div className="field">
        <label htmlFor={`${id}-project`}>Project (grant {n})</label>
        <select
          id={`${id}-project`}
          value={grant.projectId}
          onChange={(e) => onChange({ projectId: e.target.value })}
          aria-invalid={projectError !== undefined}
          aria-describedby={projectError ? `${id}-project-error` : undefined}
        >
          {projects.map((p) => (
            <option key={p.id} value={p.id}>
              {p.name}
            </option>
          ))}
          {globalAdmin && <option value="">Every project (global admin)</option>}
        </select>
        {projectError && (
          <p id={`${id}-project-error`} className="field-error">
            {projectError}
          </p>
        )}
      </div>
      <div className="field">
        <label htmlFor={`${id}-role`}>Role (grant {n})</label>
        <select
          id={`${id}-role`}
          value={global ? Role.ADMIN : grant.role}
          disabled={global}
          onChange={(e) => onChange({ role: Number(e.target.value) as Role })}
          aria-invalid={roleError !== undefined}
          aria-describedby={`${id}-role-help${roleError ? ` ${id}-role-error` : ""}`}
        >
          {ROLES.map((r) => (
            <option key={r.key} value={r.role}>
              {r.label}
            </option>
          ))}
        </select>
        <p id={`${id}-role-help`} className="hint">
          {roleHelp}
        </p>
        {roleError && (
          <p id={`${id}-role-error`} className="field-error">
            {roleError}
          </p>
        )}
      </div>
      <div className="field">
        <label htmlFor={`${id}-prefix`}>Folder (grant {n}, optional)</label>
        <input
          id={`${id}-prefix`}
          className="mono"
          placeholder="/ (the whole project)"
          value={global ? "/" : grant.pathPrefix}
          disabled={global}
          onChange={(e) => onChange({ pathPrefix: e.target.value })}
          aria-invalid={prefixError !== undefined}
          aria-describedby={prefixError ? `${id}-prefix-error` : undefined}
        />
        {prefixError && (
          <p id={`${id}-prefix-error`} className="field-error">
            {prefixError}
          </p>
        )}
      </div>
      {removable && (
        <button type="button" className="btn btn-small btn-ghost grant-remove" onClick={onRemove}>
          Remove grant {n}
        </button>
      )}
    </div>
  );
}

/**
 * The new token's value, shown this once, with Copy; for a Scaleway-style
 * key, its access key beside its secret key (the value), each with Copy.
 */
function CreatedToken({
  token,
  value,
  accessKey,
  onDone,
}: {
  token: Token;
  value: string;
  /** "" for a Coffer token. */
  accessKey: string;
  onDone: () => void;
}) {
  const id = useId();
  return (
    <section className="card token-created" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`} className="card-title">
        Token “{token.name}” created
      </h2>
      {accessKey === "" ? (
        <>
          <div className="notice notice-warn" role="note">
            Copy the token now: this is the only time it is shown. Coffer keeps only its hash, and
            cannot show it again.
          </div>
          <CopyField label="Token" value={value} />
        </>
      ) : (
        <>
          <div className="notice notice-warn" role="note">
            Copy the secret key now: this is the only time it is shown. Coffer keeps only its hash,
            and cannot show it again. The access key stays listed with the token.
          </div>
          <CopyField label="Access key" value={accessKey} copies="access key" />
          <CopyField label="Secret key" value={value} copies="secret key" />
          <p className="hint">
            Scaleway's SDKs, scw CLI and Terraform take these as the access key and the secret key
            (SCW_ACCESS_KEY and SCW_SECRET_KEY).
          </p>
        </>
      )}
      <button type="button" className="btn" onClick={onDone}>
        Done
      </button>
    </section>
  );
}

/**
 * A read-only value with its own Copy button, "Copied" status and copy
 * error. `copies` names what the button copies, for assistive technology,
 * when a screen has more than one ("Copy secret key").
 */
function CopyField({ label, value, copies }: { label: string; value: string; copies?: string }) {
  const id = useId();
  const clipboard = useClipboard();
  const [copyError, setCopyError] = useState<unknown>();
  async function copy() {
    setCopyError(undefined);
    setCopyError(await clipboard.write(value));
  }
  return (
    <div className="field">
      <label htmlFor={`${id}-value`}>{label}</label>
      <div className="token-value">
        <input id={`${id}-value`} className="mono" readOnly value={value} />
        <button type="button" className="btn btn-primary" onClick={copy}>
          Copy{copies !== undefined && <span className="visually-hidden"> {copies}</span>}
        </button>
        <CopiedStatus copied={clipboard.copied} />
      </div>
      <ProblemMessage error={copyError} />
    </div>
  );
}
