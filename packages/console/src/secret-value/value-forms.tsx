import { type ChangeEvent, useEffect, useId, useRef, useState } from "react";
import { parseDotenv } from "../import/dotenv.ts";
import "./value-forms.css";
import { describedBy, Field, FieldError } from "./fields.tsx";
import {
  DATABASE_ENGINES,
  type DatabaseEngine,
  decodeFile,
  emptyDraft,
  type FieldErrors,
  fileSizeProblem,
  formatCount,
  type KeyValueRow,
  KIND_HINTS,
  KIND_LABELS,
  newRow,
  VALUE_KINDS,
  type ValueDraft,
  type ValueKind,
} from "./value-draft.ts";

/**
 * The value of a secret, entered by hand or read from a file, one form per
 * type. Every form is controlled: the parent owns the {@link ValueDraft} and
 * turns it into payload bytes with `encodeDraft` when the person submits.
 * Secret inputs never autocomplete or spell-check (a browser would keep or
 * send what they hold).
 */

/** How the value is given: typed in, or read from a file. */
export type ValueSource = "manual" | "file";

/** The note the seed puts under the choice of source. */
export const FILE_SIZE_NOTE = "The maximum file size for your secret is 64 KiB.";

const secretInput = { autoComplete: "off", spellCheck: false, autoCapitalize: "off" } as const;

/** "Add manually" or "Import from a file", as two radio buttons. */
export function SourceChoice({
  value,
  onChange,
  legend = "Choose whether to add your secret manually or import it from a file",
}: {
  value: ValueSource;
  onChange: (source: ValueSource) => void;
  legend?: string;
}) {
  const name = useId();
  return (
    <fieldset className="choice-group">
      <legend>{legend}</legend>
      <label className="choice">
        <input
          type="radio"
          name={name}
          value="manual"
          checked={value === "manual"}
          onChange={() => onChange("manual")}
        />
        Add manually
      </label>
      <label className="choice">
        <input
          type="radio"
          name={name}
          value="file"
          checked={value === "file"}
          onChange={() => onChange("file")}
        />
        Import from a file
      </label>
      <p className="hint">{FILE_SIZE_NOTE}</p>
    </fieldset>
  );
}

/** The six secret types, as radio buttons with a line on each. */
export function TypeChoice({
  value,
  onChange,
  error,
}: {
  value: ValueKind;
  onChange: (kind: ValueKind) => void;
  error?: string | undefined;
}) {
  const name = useId();
  return (
    <fieldset className="choice-group type-choice">
      <legend>Choose a secret type</legend>
      {VALUE_KINDS.map((kind) => (
        <div key={kind} className="choice choice-card">
          <input
            id={`${name}-${kind}`}
            type="radio"
            name={name}
            value={kind}
            checked={value === kind}
            onChange={() => onChange(kind)}
            aria-describedby={`${name}-${kind}-hint`}
          />
          <label htmlFor={`${name}-${kind}`} className="choice-title">
            {KIND_LABELS[kind]}
          </label>
          <span id={`${name}-${kind}-hint`} className="hint">
            {KIND_HINTS[kind]}
          </span>
        </div>
      ))}
      <FieldError id={`${name}-type`}>{error}</FieldError>
    </fieldset>
  );
}

/**
 * The value: the type's form, or (when importing) a file input whose file
 * is checked against the 64 KiB limit by its size before it is read, then
 * read into the type's form for review. An opaque file is kept as its bytes.
 */
export function ValueEntry({
  source,
  draft,
  onChange,
  errors,
  onFileRead,
}: {
  source: ValueSource;
  draft: ValueDraft;
  onChange: (draft: ValueDraft) => void;
  errors: FieldErrors;
  /**
   * Told the name of the file the value was read from, or undefined when
   * none is (none chosen yet, or the last one refused): a form must not
   * send a value "imported from a file" when no file was read.
   */
  onFileRead?: (fileName: string | undefined) => void;
}) {
  const id = useId();
  const [fileProblem, setFileProblem] = useState<string>();
  const [loaded, setLoaded] = useState<string>();
  // biome-ignore lint/correctness/useExhaustiveDependencies: told when the file changes, not when the callback does
  useEffect(() => {
    onFileRead?.(loaded);
  }, [loaded]);
  // The last file read, so that choosing another type reads it again as that type.
  const lastFile = useRef<{ name: string; bytes: Uint8Array } | undefined>(undefined);
  const kind = draft.kind;

  // Choosing "Import from a file" starts from no file: a file read earlier is forgotten.
  useEffect(() => {
    if (source !== "file") return;
    lastFile.current = undefined;
    setLoaded(undefined);
    setFileProblem(undefined);
  }, [source]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: re-read only when the type changes
  useEffect(() => {
    const file = lastFile.current;
    if (source !== "file" || file === undefined) return;
    const decoded = decodeFile(kind, file.bytes, file.name, envPairs);
    if ("draft" in decoded) {
      setFileProblem(undefined);
      onChange(decoded.draft);
    } else {
      setFileProblem(decoded.problem);
      setLoaded(undefined);
      onChange(emptyDraft(kind));
    }
  }, [kind]);

  async function chooseFile(event: ChangeEvent<HTMLInputElement>) {
    const file = event.target.files?.[0];
    setLoaded(undefined);
    if (file === undefined) return;
    // The size is known before a byte is read: a file over the limit is never read or sent.
    const tooBig = fileSizeProblem(file.size);
    if (tooBig) {
      lastFile.current = undefined;
      setFileProblem(tooBig);
      // Nothing of a file read before stays in the form, to be sent in this one's place.
      onChange(emptyDraft(kind));
      event.target.value = "";
      return;
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    const decoded = decodeFile(kind, bytes, file.name, envPairs);
    if ("problem" in decoded) {
      lastFile.current = undefined;
      setFileProblem(decoded.problem);
      onChange(emptyDraft(kind));
      return;
    }
    lastFile.current = { name: file.name, bytes };
    setFileProblem(undefined);
    setLoaded(file.name);
    onChange(decoded.draft);
  }

  const fileId = `${id}-file`;
  const showForm = source === "manual" || (loaded !== undefined && kind !== "opaque");
  // Until a file is read into a form, the value's own error (none chosen yet) belongs to the file input.
  const fileError = fileProblem ?? (showForm ? undefined : errors.data);
  return (
    <div className="value-entry">
      {source === "file" ? (
        <div className={fileError ? "field field-invalid" : "field"}>
          <label htmlFor={fileId}>Secret file</label>
          <input
            id={fileId}
            type="file"
            onChange={chooseFile}
            aria-invalid={fileError ? true : undefined}
            aria-describedby={describedBy(fileId, true, fileError)}
          />
          <p id={`${fileId}-hint`} className="hint">
            {fileHint(kind)}
          </p>
          <FieldError id={fileId}>{fileError}</FieldError>
          {loaded && kind !== "opaque" ? (
            <p className="notice notice-info" role="status">
              Read from {loaded}. Check the value below before you continue.
            </p>
          ) : null}
        </div>
      ) : null}
      {source === "file" && draft.kind === "opaque" && draft.file ? (
        <p className="notice notice-info" role="status">
          {draft.file.name}: {formatCount(draft.file.bytes.byteLength)} bytes, stored exactly as
          they are.
        </p>
      ) : null}
      {showForm ? <ValueForm draft={draft} onChange={onChange} errors={errors} /> : null}
    </div>
  );
}

function envPairs(text: string) {
  return parseDotenv(text);
}

function fileHint(kind: ValueKind): string {
  switch (kind) {
    case "opaque":
      return "Any file up to 64 KiB; its bytes are stored exactly as they are.";
    case "certificate":
      return "A PEM file (.pem, .crt) holding one or more blocks.";
    case "key_value":
      return "A JSON object of keys and values, or a .env file.";
    case "basic_credentials":
      return 'A JSON file: {"username": "...", "password": "..."}.';
    case "database_credentials":
      return "A JSON file with engine, host, port, dbname, username and password.";
    case "ssh_key":
      return 'A private key file (such as id_ed25519), or JSON {"ssh_private_key": "..."}.';
  }
}

/** The form of the draft's type. */
export function ValueForm({
  draft,
  onChange,
  errors,
}: {
  draft: ValueDraft;
  onChange: (draft: ValueDraft) => void;
  errors: FieldErrors;
}) {
  switch (draft.kind) {
    case "opaque":
      return <OpaqueForm draft={draft} onChange={onChange} errors={errors} />;
    case "certificate":
      return <CertificateForm draft={draft} onChange={onChange} errors={errors} />;
    case "key_value":
      return <KeyValueForm draft={draft} onChange={onChange} errors={errors} />;
    case "basic_credentials":
      return <BasicCredentialsForm draft={draft} onChange={onChange} errors={errors} />;
    case "database_credentials":
      return <DatabaseCredentialsForm draft={draft} onChange={onChange} errors={errors} />;
    case "ssh_key":
      return <SshKeyForm draft={draft} onChange={onChange} errors={errors} />;
  }
}

type FormProps<K extends ValueKind> = {
  draft: Extract<ValueDraft, { kind: K }>;
  onChange: (draft: ValueDraft) => void;
  errors: FieldErrors;
};

/** Opaque: text typed in (stored as UTF-8), or a binary file's bytes. */
export function OpaqueForm({ draft, onChange, errors }: FormProps<"opaque">) {
  const id = useId();
  if (draft.file) {
    return (
      <div className="field">
        <p>
          File <strong>{draft.file.name}</strong> ({formatCount(draft.file.bytes.byteLength)}{" "}
          bytes).
        </p>
        <button
          type="button"
          className="btn btn-small"
          onClick={() => onChange({ kind: "opaque", text: "" })}
        >
          Remove file and type a value
        </button>
        <FieldError id={`${id}-value`}>{errors.data}</FieldError>
      </div>
    );
  }
  return (
    <Field id={`${id}-value`} label="Secret value" error={errors.data}>
      <textarea
        id={`${id}-value`}
        className="mono"
        rows={4}
        value={draft.text}
        onChange={(e) => onChange({ ...draft, text: e.target.value })}
        aria-invalid={errors.data ? true : undefined}
        aria-describedby={describedBy(`${id}-value`, false, errors.data)}
        {...secretInput}
      />
    </Field>
  );
}

/** Certificate: PEM text. */
export function CertificateForm({ draft, onChange, errors }: FormProps<"certificate">) {
  const id = `${useId()}-pem`;
  return (
    <Field
      id={id}
      label="Certificate (PEM)"
      hint='One or more PEM blocks, from "-----BEGIN CERTIFICATE-----" to "-----END CERTIFICATE-----" (chains and keys too).'
      error={errors.data}
    >
      <textarea
        id={id}
        className="mono"
        rows={10}
        value={draft.pem}
        onChange={(e) => onChange({ ...draft, pem: e.target.value })}
        aria-invalid={errors.data ? true : undefined}
        aria-describedby={describedBy(id, true, errors.data)}
        {...secretInput}
      />
    </Field>
  );
}

/** SSH key: a private key's text. */
export function SshKeyForm({ draft, onChange, errors }: FormProps<"ssh_key">) {
  const id = `${useId()}-ssh`;
  const error = errors["data.ssh_private_key"] ?? errors.data;
  return (
    <Field
      id={id}
      label="SSH private key"
      hint='A PEM or OpenSSH private key, such as the content of ~/.ssh/id_ed25519 ("-----BEGIN OPENSSH PRIVATE KEY-----").'
      error={error}
    >
      <textarea
        id={id}
        className="mono"
        rows={10}
        value={draft.sshPrivateKey}
        onChange={(e) => onChange({ ...draft, sshPrivateKey: e.target.value })}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy(id, true, error)}
        {...secretInput}
      />
    </Field>
  );
}

/** Basic credentials: a username and a password. */
export function BasicCredentialsForm({ draft, onChange, errors }: FormProps<"basic_credentials">) {
  const id = useId();
  return (
    <div className="field-row">
      <TextField
        id={`${id}-username`}
        label="Username"
        value={draft.username}
        error={errors["data.username"]}
        onChange={(username) => onChange({ ...draft, username })}
      />
      <TextField
        id={`${id}-password`}
        label="Password"
        type="password"
        value={draft.password}
        error={errors["data.password"]}
        onChange={(password) => onChange({ ...draft, password })}
      />
      <FieldError id={`${id}-data`}>{errors.data}</FieldError>
    </div>
  );
}

/** Database credentials: engine, host, port, database name, username and password. */
export function DatabaseCredentialsForm({
  draft,
  onChange,
  errors,
}: FormProps<"database_credentials">) {
  const id = useId();
  const engineError = errors["data.engine"];
  return (
    <div className="field-grid">
      <Field id={`${id}-engine`} label="Engine" error={engineError}>
        <select
          id={`${id}-engine`}
          value={draft.engine}
          onChange={(e) => onChange({ ...draft, engine: e.target.value as DatabaseEngine })}
          aria-invalid={engineError ? true : undefined}
          aria-describedby={describedBy(`${id}-engine`, false, engineError)}
        >
          {DATABASE_ENGINES.map((engine) => (
            <option key={engine} value={engine}>
              {engine}
            </option>
          ))}
        </select>
      </Field>
      <TextField
        id={`${id}-host`}
        label="Host"
        value={draft.host}
        error={errors["data.host"]}
        onChange={(host) => onChange({ ...draft, host })}
      />
      <TextField
        id={`${id}-port`}
        label="Port"
        inputMode="numeric"
        value={draft.port}
        hint="0 to 65535."
        error={errors["data.port"]}
        onChange={(port) => onChange({ ...draft, port })}
      />
      <TextField
        id={`${id}-dbname`}
        label="Database name"
        value={draft.dbname}
        error={errors["data.dbname"]}
        onChange={(dbname) => onChange({ ...draft, dbname })}
      />
      <TextField
        id={`${id}-username`}
        label="Username"
        value={draft.username}
        error={errors["data.username"]}
        onChange={(username) => onChange({ ...draft, username })}
      />
      <TextField
        id={`${id}-password`}
        label="Password"
        type="password"
        value={draft.password}
        error={errors["data.password"]}
        onChange={(password) => onChange({ ...draft, password })}
      />
      <FieldError id={`${id}-data`}>{errors.data}</FieldError>
    </div>
  );
}

function TextField({
  id,
  label,
  value,
  onChange,
  error,
  hint,
  type = "text",
  inputMode,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  error?: string | undefined;
  hint?: string;
  type?: "text" | "password";
  inputMode?: "numeric";
}) {
  return (
    <Field id={id} label={label} hint={hint} error={error}>
      <input
        id={id}
        type={type}
        value={value}
        inputMode={inputMode}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy(id, hint, error)}
        {...secretInput}
      />
    </Field>
  );
}

/**
 * Key/value: rows of key and value, added and removed one by one. Errors on
 * a row (a duplicate key) come as `rows.<id>.key`; the server's (which name
 * the key, `data.<key>`) are shown on the row holding that key.
 */
export function KeyValueForm({ draft, onChange, errors }: FormProps<"key_value">) {
  const id = useId();
  const rows = draft.rows;
  const setRows = (next: KeyValueRow[]) => onChange({ ...draft, rows: next });
  const update = (rowId: string, patch: Partial<KeyValueRow>) =>
    setRows(rows.map((r) => (r.id === rowId ? { ...r, ...patch } : r)));
  // After "Add a row", the new row's key takes the focus, so the keyboard carries on typing.
  const [focusRow, setFocusRow] = useState<string>();
  useEffect(() => {
    if (focusRow === undefined) return;
    document.getElementById(`${id}-${focusRow}-key`)?.focus();
    setFocusRow(undefined);
  }, [focusRow, id]);
  const rowError = (row: KeyValueRow) =>
    errors[`rows.${row.id}.key`] ??
    (row.key !== ""
      ? (errors[`data.${row.key}`] ?? errors[`data[${JSON.stringify(row.key)}]`])
      : undefined);
  return (
    <fieldset className="key-value">
      <legend>Keys and values</legend>
      <table className="key-value-table">
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col">Value</th>
            <th scope="col">
              <span className="visually-hidden">Remove</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row, index) => {
            const error = rowError(row);
            const keyId = `${id}-${row.id}-key`;
            return (
              <tr key={row.id}>
                <td>
                  <input
                    id={keyId}
                    aria-label={`Key ${index + 1}`}
                    value={row.key}
                    onChange={(e) => update(row.id, { key: e.target.value })}
                    aria-invalid={error ? true : undefined}
                    aria-describedby={error ? `${keyId}-error` : undefined}
                    autoComplete="off"
                    spellCheck={false}
                  />
                  <FieldError id={keyId}>{error}</FieldError>
                </td>
                <td>
                  <input
                    aria-label={`Value ${index + 1}`}
                    value={row.value}
                    onChange={(e) => update(row.id, { value: e.target.value })}
                    {...secretInput}
                  />
                </td>
                <td>
                  <button
                    type="button"
                    className="btn btn-small"
                    aria-label={`Remove row ${index + 1}`}
                    onClick={() => {
                      const next = rows.filter((r) => r.id !== row.id);
                      setRows(next.length > 0 ? next : [newRow()]);
                    }}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <button
        type="button"
        className="btn btn-small"
        onClick={() => {
          const row = newRow();
          setRows([...rows, row]);
          setFocusRow(row.id);
        }}
      >
        Add a row
      </button>
      <FieldError id={`${id}-data`}>{errors.data}</FieldError>
    </fieldset>
  );
}
