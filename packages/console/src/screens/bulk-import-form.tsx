import { SecretService } from "@coffer/api";
import { createClient } from "@connectrpc/connect";
import { useTransport } from "@connectrpc/connect-query";
import { type DragEvent, useId, useRef, useState } from "react";
import { useSecretChanged } from "../api/cache.ts";
import {
  formatOfName,
  guessFormat,
  ImportFileError,
  type ImportFormat,
  MAX_IMPORT_FILE_BYTES,
  parseImportFile,
} from "../import/parse.ts";
import {
  type ExistingSecret,
  type PlanRow,
  planImport,
  type RowAction,
  rowsToWrite,
} from "../import/plan.ts";
import { normalizePath, pathProblem } from "../secret-value/metadata.ts";
import { refusalOf, sentence } from "../secret-value/refusal.ts";
import {
  formatCount,
  KIND_LABELS,
  kindOfSecretType,
  secretTypeOf,
} from "../secret-value/value-draft.ts";
import {
  describedBy,
  FieldError,
  FormStep,
  SelectField,
  TextAreaField,
  TextField,
} from "../ui/fields.tsx";
import "../secret-value/value-forms.css";
import { DataTable } from "../ui/data-table.tsx";

/**
 * Bulk import (screen 9): a .env, JSON or YAML file, dropped, chosen or
 * pasted, becomes one secret per top-level entry in a folder. "Preview"
 * parses it in the browser and looks the folder up (ListSecrets of that
 * exact path) to say, row by row, what each entry becomes, whether a secret
 * of that name is already there, and what will be done; nothing is written
 * until "Import N secrets". The result then says what was done, row by row.
 *
 * The file's values stay in this screen's state only (never in a query
 * cache); they are dropped once the import has run.
 */

const ACTION_LABELS: Record<RowAction, string> = {
  create: "Create",
  new_version: "Add a new version",
  skip: "Skip",
};

/** What was done with one row. */
interface RowResult {
  name: string;
  outcome: "created" | "new_version" | "skipped" | "refused" | "failed";
  detail: string;
}

const OUTCOME_LABELS: Record<RowResult["outcome"], string> = {
  created: "Created",
  new_version: "New version",
  skipped: "Skipped",
  refused: "Refused",
  failed: "Failed",
};

export function BulkImportForm({
  projectId,
  region,
  initialPath,
  onOpenFolder,
}: {
  projectId: string;
  region: string;
  initialPath?: string;
  /** Shown after the import: opens the folder the secrets went to. */
  onOpenFolder?: (path: string) => void;
}) {
  const id = useId();
  const transport = useTransport();
  const changed = useSecretChanged();
  const [path, setPath] = useState(initialPath && initialPath !== "" ? initialPath : "/");
  const [text, setText] = useState("");
  const [fileName, setFileName] = useState<string>();
  const [format, setFormat] = useState<ImportFormat | "auto">("auto");
  const [fileProblem, setFileProblem] = useState<string>();
  const [parseProblem, setParseProblem] = useState<string>();
  const [rows, setRows] = useState<PlanRow[]>();
  const [planned, setPlanned] = useState<{ path: string; source: string }>();
  const [busy, setBusy] = useState<"preview" | "import">();
  const [progress, setProgress] = useState<string>();
  const [lookupProblem, setLookupProblem] = useState<string>();
  const [results, setResults] = useState<RowResult[]>();
  const [dragging, setDragging] = useState(false);
  // Changing the key empties the file input once its file has been imported.
  const [fileInputKey, setFileInputKey] = useState(0);
  const previewRef = useRef<HTMLHeadingElement>(null);
  const resultRef = useRef<HTMLHeadingElement>(null);

  const pathError = pathProblem(path);

  function resetPlan() {
    setRows(undefined);
    setPlanned(undefined);
    setResults(undefined);
    setLookupProblem(undefined);
  }

  async function readFile(file: File) {
    resetPlan();
    setParseProblem(undefined);
    if (file.size > MAX_IMPORT_FILE_BYTES) {
      setFileProblem(
        `This file is ${formatCount(file.size)} bytes; an import file may be at most 1 MiB (${formatCount(MAX_IMPORT_FILE_BYTES)} bytes).`,
      );
      return;
    }
    let content: string;
    try {
      content = new TextDecoder("utf-8", { fatal: true }).decode(await file.arrayBuffer());
    } catch {
      setFileProblem("This file is not UTF-8 text; import a .env, JSON or YAML file.");
      return;
    }
    setFileProblem(undefined);
    setFileName(file.name);
    setText(content);
    const byName = formatOfName(file.name);
    setFormat(byName ?? "auto");
  }

  function onDrop(event: DragEvent<HTMLDivElement>) {
    event.preventDefault();
    setDragging(false);
    const file = event.dataTransfer.files[0];
    if (file) void readFile(file);
  }

  /** Every secret directly in the folder, by name (ListSecrets with the exact path, every page). */
  async function existingIn(folder: string): Promise<Map<string, ExistingSecret>> {
    const client = createClient(SecretService, transport);
    const found = new Map<string, ExistingSecret>();
    let pageToken = "";
    do {
      const page = await client.listSecrets({
        region,
        projectId,
        path: folder,
        pageSize: 1000,
        pageToken,
      });
      for (const s of page.secrets) found.set(s.name, { id: s.id, kind: kindOfSecretType(s.type) });
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return found;
  }

  async function preview() {
    resetPlan();
    setParseProblem(undefined);
    if (pathError) return;
    if (text.trim() === "") {
      setParseProblem("Drop, choose or paste a .env, JSON or YAML file first.");
      return;
    }
    const chosen = format === "auto" ? guessFormat(text) : format;
    let entries: Awaited<ReturnType<typeof parseImportFile>>;
    try {
      entries = await parseImportFile(text, chosen);
    } catch (err) {
      setParseProblem(err instanceof ImportFileError ? err.message : "This file does not parse.");
      return;
    }
    if (entries.length === 0) {
      setParseProblem("This file has no entries to import.");
      return;
    }
    setBusy("preview");
    const folder = normalizePath(path);
    try {
      const existing = await existingIn(folder);
      setRows(planImport(entries, existing));
      setPlanned({ path: folder, source: fileName ?? "the pasted text" });
      setTimeout(() => previewRef.current?.focus(), 0);
    } catch (err) {
      setLookupProblem(`The folder could not be looked up: ${refusalOf(err).message}`);
    } finally {
      setBusy(undefined);
    }
  }

  function choose(index: number, action: RowAction) {
    setRows((current) => current?.map((r, i) => (i === index ? { ...r, action } : r)));
  }

  async function runImport() {
    if (!rows || !planned) return;
    setBusy("import");
    const client = createClient(SecretService, transport);
    const out: RowResult[] = [];
    const total = rowsToWrite(rows).length;
    let done = 0;
    for (const row of rows) {
      if (row.refused) {
        out.push({ name: row.name, outcome: "refused", detail: row.refused });
        continue;
      }
      if (row.action === "skip" || !row.bytes || !row.kind) {
        out.push({
          name: row.name,
          outcome: "skipped",
          detail: row.existing
            ? "A secret of this name is already in the folder; it was left as it is."
            : "Skipped, as chosen.",
        });
        continue;
      }
      done += 1;
      setProgress(`Importing ${done} of ${total}…`);
      try {
        if (row.action === "create") {
          await client.createSecret({
            region,
            projectId,
            name: row.name,
            path: planned.path,
            type: secretTypeOf(row.kind),
            firstVersion: { data: row.bytes },
          });
          out.push({
            name: row.name,
            outcome: "created",
            detail: `${KIND_LABELS[row.kind]} secret, with its value as version 1.`,
          });
        } else if (row.existing) {
          const made = await client.createSecretVersion({
            region,
            secretId: row.existing.id,
            data: row.bytes,
          });
          out.push({
            name: row.name,
            outcome: "new_version",
            detail: `Version ${made.version?.revision ?? "?"} added, enabled.`,
          });
        }
      } catch (err) {
        const refusal = refusalOf(err);
        out.push({
          name: row.name,
          outcome: "failed",
          detail: refusal.field
            ? sentence(refusal.field.replace(/^first_version\./, ""), refusal.message)
            : refusal.message,
        });
      }
    }
    // The values are not kept once written: the result holds names and outcomes only.
    setRows(undefined);
    setText("");
    setFileName(undefined);
    setFileInputKey((k) => k + 1);
    setResults(out);
    setBusy(undefined);
    setProgress(undefined);
    await changed(region);
    setTimeout(() => resultRef.current?.focus(), 0);
  }

  const toWrite = rows ? rowsToWrite(rows).length : 0;
  const counts = rows ? summarize(rows) : undefined;

  return (
    <div className="bulk-import">
      <h1>Import secrets</h1>
      <p className="muted">
        Drop, choose or paste a <code>.env</code>, JSON or YAML file: each top-level entry becomes a
        secret in the folder below. A string becomes an opaque secret, a flat object a key/value
        secret. You see what will happen before anything is written.
      </p>

      <FormStep title="Folder">
        <TextField
          id={`${id}-path`}
          label="Path"
          hint="The folder the secrets go to. Each path must be prefixed with a slash."
          error={pathError}
          value={path}
          onChange={(next) => {
            setPath(next);
            resetPlan();
          }}
          autoComplete="off"
          spellCheck={false}
        />
      </FormStep>

      <FormStep title="File">
        {/* The drop zone is for a mouse; the file input inside it does the same from the keyboard. */}
        {/* biome-ignore lint/a11y/noStaticElementInteractions: dropping is a pointer gesture; the file input is the keyboard's way */}
        <div
          className={dragging ? "drop-zone drop-zone-active" : "drop-zone"}
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={onDrop}
        >
          <p>Drop a .env, JSON or YAML file here, or choose one:</p>
          <label htmlFor={`${id}-file`} className="field-label">
            Import file
          </label>
          <input
            key={fileInputKey}
            id={`${id}-file`}
            type="file"
            accept=".env,.json,.yaml,.yml,text/plain,application/json"
            onChange={(e) => {
              const file = e.target.files?.[0];
              if (file) void readFile(file);
            }}
            aria-invalid={fileProblem ? true : undefined}
            aria-describedby={describedBy(`${id}-file`, false, fileProblem)}
          />
          <FieldError id={`${id}-file`}>{fileProblem}</FieldError>
        </div>
        <TextAreaField
          id={`${id}-text`}
          label="Or paste the file's content"
          hint={fileName ? `Read from ${fileName}; you may edit it before the preview.` : undefined}
          error={parseProblem}
          rows={8}
          value={text}
          onChange={(next) => {
            setText(next);
            setFileName(undefined);
            resetPlan();
          }}
          autoComplete="off"
          spellCheck={false}
        />
        <SelectField
          id={`${id}-format`}
          label="Format"
          value={format}
          onChange={(next) => {
            setFormat(next as ImportFormat | "auto");
            resetPlan();
          }}
          options={[
            ["auto", "Detect from the file"],
            ["env", ".env"],
            ["json", "JSON"],
            ["yaml", "YAML"],
          ]}
        />
        <div className="form-actions">
          <button
            type="button"
            className="btn"
            onClick={preview}
            disabled={busy !== undefined}
            aria-busy={busy === "preview"}
          >
            {busy === "preview" ? "Looking up the folder…" : "Preview"}
          </button>
        </div>
        {lookupProblem ? (
          <p className="notice notice-error" role="alert">
            {lookupProblem}
          </p>
        ) : null}
      </FormStep>

      {rows && planned && counts ? (
        <FormStep title="Preview" headingRef={previewRef}>
          <p>
            {rows.length} {rows.length === 1 ? "entry" : "entries"} from {planned.source} into{" "}
            <code>{planned.path}</code>: {counts}. Nothing is written until you click “Import”.
          </p>
          <DataTable
            className="import-table"
            columns={["Name", "Type", "In the folder", "Action", "Notes"]}
          >
            {rows.map((row, index) => (
              <tr
                key={`${row.name}-${row.where}`}
                className={row.refused ? "row-refused" : undefined}
              >
                <th scope="row" className="mono">
                  {row.name}
                </th>
                <td>{row.kind ? KIND_LABELS[row.kind] : "—"}</td>
                <td>{row.existing ? "Already exists" : row.refused ? "—" : "New"}</td>
                <td>
                  {row.choices.length > 1 ? (
                    <select
                      aria-label={`Action for ${row.name}`}
                      value={row.action}
                      onChange={(e) => choose(index, e.target.value as RowAction)}
                    >
                      {row.choices.map((c) => (
                        <option key={c} value={c}>
                          {ACTION_LABELS[c]}
                        </option>
                      ))}
                    </select>
                  ) : row.refused ? (
                    <span className="badge badge-danger">Refused</span>
                  ) : (
                    ACTION_LABELS[row.action]
                  )}
                </td>
                <td className="import-note">
                  {row.refused ?? row.noNewVersion ?? `From ${row.where}.`}
                </td>
              </tr>
            ))}
          </DataTable>
          <div className="form-actions">
            <button
              type="button"
              className="btn btn-primary"
              onClick={runImport}
              disabled={toWrite === 0 || busy !== undefined}
              aria-busy={busy === "import"}
            >
              {busy === "import"
                ? (progress ?? "Importing…")
                : `Import ${toWrite} ${toWrite === 1 ? "secret" : "secrets"}`}
            </button>
          </div>
        </FormStep>
      ) : null}

      {results ? (
        <FormStep title="Result" headingRef={resultRef}>
          <p role="status">{summarizeResults(results)}</p>
          <DataTable className="import-table" columns={["Name", "Result", "Details"]}>
            {results.map((r, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: a name may appear twice in a file
              <tr key={`${r.name}-${i}`}>
                <th scope="row" className="mono">
                  {r.name}
                </th>
                <td>
                  <span className={`badge ${OUTCOME_BADGE[r.outcome]}`}>
                    {OUTCOME_LABELS[r.outcome]}
                  </span>
                </td>
                <td>{r.detail}</td>
              </tr>
            ))}
          </DataTable>
          {onOpenFolder && planned ? (
            <div className="form-actions">
              <button type="button" className="btn" onClick={() => onOpenFolder(planned.path)}>
                Open {planned.path}
              </button>
            </div>
          ) : null}
        </FormStep>
      ) : null}
    </div>
  );
}

const OUTCOME_BADGE: Record<RowResult["outcome"], string> = {
  created: "badge-ok",
  new_version: "badge-ok",
  skipped: "",
  refused: "badge-danger",
  failed: "badge-danger",
};

function summarize(rows: readonly PlanRow[]): string {
  const count = (test: (r: PlanRow) => boolean) => rows.filter(test).length;
  const existing = count((r) => r.existing !== undefined);
  return [
    `${count((r) => r.action === "create")} to create`,
    `${count((r) => r.action === "new_version")} to get a new version`,
    `${count((r) => r.action === "skip" && !r.refused)} to skip (${existing} already in the folder)`,
    `${count((r) => r.refused !== undefined)} refused`,
  ].join(", ");
}

function summarizeResults(results: readonly RowResult[]): string {
  const n = (o: RowResult["outcome"]) => results.filter((r) => r.outcome === o).length;
  return `${n("created")} created, ${n("new_version")} new ${n("new_version") === 1 ? "version" : "versions"}, ${n("skipped")} skipped, ${n("refused")} refused, ${n("failed")} failed.`;
}
