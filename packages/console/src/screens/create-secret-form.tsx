import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { EphemeralAction, type Secret, SecretService } from "@coffer/api";
import { Code, createClient } from "@connectrpc/connect";
import { useQuery, useTransport } from "@connectrpc/connect-query";
import { type FormEvent, useEffect, useId, useRef, useState } from "react";
import { describedBy, Field, FieldError, Toggle } from "../secret-value/fields.tsx";
import {
  descriptionProblem,
  nameProblem,
  normalizePath,
  parseTtl,
  pathProblem,
  splitTags,
  TTL_UNITS,
  type TtlUnit,
  tagsProblem,
} from "../secret-value/metadata.ts";
import { refusalOf, sentence } from "../secret-value/refusal.ts";
import {
  emptyDraft,
  encodeDraft,
  type FieldErrors,
  NO_FILE,
  secretTypeOf,
  type ValueDraft,
  type ValueKind,
} from "../secret-value/value-draft.ts";
import {
  SourceChoice,
  TypeChoice,
  ValueEntry,
  type ValueSource,
} from "../secret-value/value-forms.tsx";

/**
 * The Create secret form (screen 4), in the seed's steps and words:
 * region, the value (by hand or from a file, its type, the value), path,
 * name and tags, protection, the ephemeral policy; then "Create secret".
 *
 * The browser checks what it can as the person types (the path at once,
 * the rest once touched or on submit); the server decides, and its refusal
 * is shown next to the field it names. The payload goes straight from the
 * form's state to one CreateSecret call: it is never put in a query or
 * mutation cache, and the form is left (unmounted) on success.
 */

export interface CreateSecretFormProps {
  projectId: string;
  /** The region from the route; the form may store the secret in another the server serves. */
  region: string;
  /** The folder the person came from, to start the path with. */
  initialPath?: string;
  /** Called with the new secret once the server has stored it. */
  onCreated: (secret: Secret) => void;
  /** Where "Cancel" goes. */
  onCancel?: () => void;
}

/** Where each request field the server may name is shown. */
type Slot = "region" | "value" | "path" | "name" | "tags" | "description" | "policy" | "form";

function slotOf(field: string): Slot {
  if (field === "region") return "region";
  if (field.startsWith("first_version.")) return "value";
  if (field === "path") return "path";
  if (field === "name") return "name";
  if (field.startsWith("tags")) return "tags";
  if (field === "description") return "description";
  if (field.startsWith("ephemeral_policy")) return "policy";
  return "form";
}

const TTL_UNIT_LABELS: Record<TtlUnit, string> = {
  minutes: "minutes",
  hours: "hours",
  days: "days",
};

export function CreateSecretForm({
  projectId,
  region: routeRegion,
  initialPath,
  onCreated,
  onCancel,
}: CreateSecretFormProps) {
  const id = useId();
  const transport = useTransport();
  const regions = useQuery(SecretService.method.listRegions, {});

  const [region, setRegion] = useState(routeRegion);
  const [source, setSource] = useState<ValueSource>("manual");
  const [kind, setKind] = useState<ValueKind>("opaque");
  const [draft, setDraft] = useState<ValueDraft>(() => emptyDraft("opaque"));
  const [valueTouched, setValueTouched] = useState(false);
  const [fileRead, setFileRead] = useState<string>();
  const [path, setPath] = useState(initialPath && initialPath !== "" ? initialPath : "/");
  const [name, setName] = useState("");
  const [nameTouched, setNameTouched] = useState(false);
  const [tagsText, setTagsText] = useState("");
  const [description, setDescription] = useState("");
  const [protect, setProtect] = useState(false);
  const [singleAccess, setSingleAccess] = useState(false);
  const [ttlOn, setTtlOn] = useState(false);
  const [ttlAmount, setTtlAmount] = useState("1");
  const [ttlUnit, setTtlUnit] = useState<TtlUnit>("days");
  const [action, setAction] = useState<EphemeralAction>(EphemeralAction.DISABLE);
  const [submitted, setSubmitted] = useState(false);
  const [busy, setBusy] = useState(false);
  const [server, setServer] = useState<{ slot: Slot; field?: string; message: string }>();
  const formRef = useRef<HTMLFormElement>(null);
  const [focusInvalid, setFocusInvalid] = useState(0);

  // After a refused submit, the first field marked invalid takes the focus.
  useEffect(() => {
    if (focusInvalid === 0) return;
    const first = formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]');
    (first ?? formRef.current?.querySelector<HTMLElement>('[role="alert"]'))?.focus();
  }, [focusInvalid]);

  const serverFor = (slot: Slot) => (server?.slot === slot ? server.message : undefined);
  const clearServer = (slot: Slot) => {
    if (server?.slot === slot) setServer(undefined);
  };

  // The browser's checks.
  const encoded = encodeDraft(draft);
  const noFile = source === "file" && fileRead === undefined;
  const valueErrors: FieldErrors = submitted || valueTouched ? { ...encoded.errors } : {};
  if (noFile && submitted) valueErrors.data = NO_FILE;
  if (server?.slot === "value" && server.field) {
    const field = server.field.replace(/^first_version\./, "");
    valueErrors[field] = server.message;
  }
  const pathError = pathProblem(path) ?? serverFor("path");
  const nameError = (submitted || nameTouched ? nameProblem(name) : undefined) ?? serverFor("name");
  const tags = splitTags(tagsText);
  const tagsError = tagsProblem(tags) ?? serverFor("tags");
  const descriptionError = descriptionProblem(description) ?? serverFor("description");
  const ttl = parseTtl(ttlAmount, ttlUnit);
  const ttlError = ttlOn && "problem" in ttl ? ttl.problem : undefined;
  const policyError = serverFor("policy");
  const regionError = serverFor("region");

  const regionChoices = regions.data?.regions.length ? regions.data.regions : [routeRegion];
  if (!regionChoices.includes(routeRegion)) regionChoices.unshift(routeRegion);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setSubmitted(true);
    setServer(undefined);
    const blocked =
      encoded.bytes === undefined ||
      noFile ||
      pathProblem(path) ||
      nameProblem(name) ||
      tagsProblem(tags) ||
      descriptionProblem(description) ||
      ttlError;
    if (blocked) {
      setFocusInvalid((n) => n + 1);
      return;
    }
    setBusy(true);
    try {
      const client = createClient(SecretService, transport);
      const policy =
        singleAccess || ttlOn
          ? {
              expiresOnceAccessed: singleAccess,
              action,
              ...(ttlOn && "ms" in ttl ? { timeToLive: durationFromMs(ttl.ms) } : {}),
            }
          : undefined;
      const response = await client.createSecret({
        region,
        projectId,
        name,
        path: normalizePath(path),
        type: secretTypeOf(kind),
        description,
        tags,
        protected: protect,
        ...(policy ? { ephemeralPolicy: policy } : {}),
        firstVersion: { data: encoded.bytes },
      });
      if (response.secret) onCreated(response.secret);
    } catch (error) {
      const refusal = refusalOf(error);
      if (refusal.field) {
        setServer({
          slot: slotOf(refusal.field),
          field: refusal.field,
          message: sentence(refusal.field.replace(/^first_version\./, ""), refusal.message),
        });
      } else if (refusal.code === Code.AlreadyExists) {
        setServer({ slot: "name", message: refusal.message });
      } else {
        setServer({ slot: "form", message: refusal.message });
      }
      setFocusInvalid((n) => n + 1);
    } finally {
      setBusy(false);
    }
  }

  function chooseKind(next: ValueKind) {
    setKind(next);
    setDraft(emptyDraft(next));
    setValueTouched(false);
    clearServer("value");
  }

  return (
    <form
      ref={formRef}
      className="create-secret"
      aria-labelledby={`${id}-title`}
      noValidate
      onSubmit={submit}
    >
      <h1 id={`${id}-title`}>Create secret</h1>

      <section aria-labelledby={`${id}-s1`} className="form-step">
        <h2 id={`${id}-s1`}>Choose a region</h2>
        <Field
          id={`${id}-region`}
          label="Region"
          hint="Secrets cannot be moved from one region to another after creation."
          error={regionError}
        >
          <select
            id={`${id}-region`}
            value={region}
            onChange={(e) => {
              setRegion(e.target.value);
              clearServer("region");
            }}
            aria-invalid={regionError ? true : undefined}
            aria-describedby={describedBy(`${id}-region`, true, regionError)}
          >
            {regionChoices.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </Field>
      </section>

      <section aria-labelledby={`${id}-s2`} className="form-step">
        <h2 id={`${id}-s2`}>Add your secret</h2>
        <SourceChoice
          value={source}
          onChange={(next) => {
            setSource(next);
            // A value typed by hand is not sent when the person chose to import a file.
            if (next === "file") {
              setDraft(emptyDraft(kind));
              setValueTouched(false);
            }
          }}
        />
        <TypeChoice value={kind} onChange={chooseKind} />
        <ValueEntry
          source={source}
          draft={draft}
          onChange={(next) => {
            setDraft(next);
            setValueTouched(true);
            clearServer("value");
          }}
          errors={valueErrors}
          onFileRead={setFileRead}
        />
      </section>

      <section aria-labelledby={`${id}-s3`} className="form-step">
        <h2 id={`${id}-s3`}>Choose a path</h2>
        <Field
          id={`${id}-path`}
          label="Path"
          hint="A path is the directory structure to access your secrets and their versions. Each path must be prefixed with a slash."
          error={pathError}
        >
          <input
            id={`${id}-path`}
            value={path}
            onChange={(e) => {
              setPath(e.target.value);
              clearServer("path");
            }}
            aria-invalid={pathError ? true : undefined}
            aria-describedby={describedBy(`${id}-path`, true, pathError)}
            autoComplete="off"
            spellCheck={false}
          />
        </Field>
      </section>

      <section aria-labelledby={`${id}-s4`} className="form-step">
        <h2 id={`${id}-s4`}>Name and tags</h2>
        <Field
          id={`${id}-name`}
          label="Name"
          hint='Letters, digits, ".", "_" and "-", up to 255 characters.'
          error={nameError}
        >
          <input
            id={`${id}-name`}
            value={name}
            required
            onChange={(e) => {
              setName(e.target.value);
              clearServer("name");
            }}
            // Passing through an empty field with Tab is not a mistake yet; the submit says so.
            onBlur={() => {
              if (name !== "") setNameTouched(true);
            }}
            aria-invalid={nameError ? true : undefined}
            aria-describedby={describedBy(`${id}-name`, true, nameError)}
            autoComplete="off"
            spellCheck={false}
          />
        </Field>
        <Field
          id={`${id}-tags`}
          label="Tags (optional)"
          hint="Separate tags with commas, for example: production, database."
          error={tagsError}
        >
          <input
            id={`${id}-tags`}
            value={tagsText}
            onChange={(e) => {
              setTagsText(e.target.value);
              clearServer("tags");
            }}
            aria-invalid={tagsError ? true : undefined}
            aria-describedby={describedBy(`${id}-tags`, true, tagsError)}
            autoComplete="off"
          />
        </Field>
        <Field id={`${id}-description`} label="Description (optional)" error={descriptionError}>
          <textarea
            id={`${id}-description`}
            rows={2}
            value={description}
            onChange={(e) => {
              setDescription(e.target.value);
              clearServer("description");
            }}
            aria-invalid={descriptionError ? true : undefined}
            aria-describedby={describedBy(`${id}-description`, false, descriptionError)}
          />
        </Field>
      </section>

      <section aria-labelledby={`${id}-s5`} className="form-step">
        <h2 id={`${id}-s5`}>Secret protection</h2>
        <Toggle
          id={`${id}-protect`}
          label="Enable secret protection"
          checked={protect}
          onChange={setProtect}
          hint="A protected secret cannot be deleted until its protection is removed."
        />
      </section>

      <section aria-labelledby={`${id}-s6`} className="form-step">
        <h2 id={`${id}-s6`}>Ephemeral policy</h2>
        <Toggle
          id={`${id}-single`}
          label="Enable single access"
          checked={singleAccess}
          onChange={(on) => {
            setSingleAccess(on);
            clearServer("policy");
          }}
          hint="Single access: allows you to set your secret versions to expire after one single access."
        />
        <Toggle
          id={`${id}-ttl`}
          label="Enable Time to Live"
          checked={ttlOn}
          onChange={(on) => {
            setTtlOn(on);
            clearServer("policy");
          }}
          hint="Time to Live: allows you to set a time frame of up to one year, during which your secret versions are valid and accessible."
        />
        {ttlOn ? (
          <div className="field-row">
            <Field id={`${id}-ttl-amount`} label="Time to live" error={ttlError}>
              <input
                id={`${id}-ttl-amount`}
                type="number"
                min={1}
                step={1}
                value={ttlAmount}
                onChange={(e) => setTtlAmount(e.target.value)}
                aria-invalid={ttlError ? true : undefined}
                aria-describedby={describedBy(`${id}-ttl-amount`, false, ttlError)}
              />
            </Field>
            <Field id={`${id}-ttl-unit`} label="Unit">
              <select
                id={`${id}-ttl-unit`}
                value={ttlUnit}
                onChange={(e) => setTtlUnit(e.target.value as TtlUnit)}
              >
                {(Object.keys(TTL_UNITS) as TtlUnit[]).map((u) => (
                  <option key={u} value={u}>
                    {TTL_UNIT_LABELS[u]}
                  </option>
                ))}
              </select>
            </Field>
          </div>
        ) : null}
        {singleAccess || ttlOn ? (
          <Field id={`${id}-action`} label="When a version expires">
            <select
              id={`${id}-action`}
              value={action}
              onChange={(e) => setAction(Number(e.target.value) as EphemeralAction)}
            >
              <option value={EphemeralAction.DISABLE}>Disable it (it can be enabled again)</option>
              <option value={EphemeralAction.DELETE}>Delete it at once (no restore)</option>
            </select>
          </Field>
        ) : null}
        <FieldError id={`${id}-policy`}>{policyError}</FieldError>
        <ul className="notes">
          <li>
            The ephemeral policy can only be applied to a secret at creation, and cannot be removed
            once applied.
          </li>
          <li>
            Once applied to a secret, the ephemeral policy’s settings will be applied to all the
            secret’s versions (even those created subsequently).
          </li>
        </ul>
      </section>

      {serverFor("form") ? (
        <p className="notice notice-error" role="alert" tabIndex={-1}>
          {serverFor("form")}
        </p>
      ) : null}
      <div className="form-actions">
        {onCancel ? (
          <button type="button" className="btn" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
        <button type="submit" className="btn btn-primary" disabled={busy} aria-busy={busy}>
          {busy ? "Creating…" : "Create secret"}
        </button>
      </div>
    </form>
  );
}
