import { type Secret, SecretService, type SecretVersion } from "@coffer/api";
import { createClient } from "@connectrpc/connect";
import { useTransport } from "@connectrpc/connect-query";
import { type FormEvent, useId, useRef, useState } from "react";
import { describedBy, Field, Toggle } from "./fields.tsx";
import { descriptionProblem } from "./metadata.ts";
import { Modal } from "./modal.tsx";
import { refusalOf, sentence } from "./refusal.ts";
import {
  emptyDraft,
  encodeDraft,
  type FieldErrors,
  KIND_LABELS,
  kindOfSecretType,
  NO_FILE,
  type ValueDraft,
} from "./value-draft.ts";
import { SourceChoice, ValueEntry, type ValueSource } from "./value-forms.tsx";

/**
 * "+ Create version" (screen 6, the seed's second part): a modal dialog in
 * which the new version's value is typed or read from a file, in the form
 * of the secret's type (which cannot change); "Enable" is on by default;
 * "Disable previous" disables the version that was the latest enabled one.
 * The payload goes from the dialog's state to one CreateSecretVersion call
 * and is gone when the dialog closes. The caller refreshes what it shows
 * (useSecretChanged) in `onCreated`.
 */
export function CreateVersionDialog({
  secret,
  onClose,
  onCreated,
}: {
  secret: Secret;
  onClose: () => void;
  onCreated: (version: SecretVersion) => void;
}) {
  const id = useId();
  const transport = useTransport();
  const kind = kindOfSecretType(secret.type);
  const [source, setSource] = useState<ValueSource>("manual");
  const [draft, setDraft] = useState<ValueDraft>(() => emptyDraft(kind));
  const [touched, setTouched] = useState(false);
  const [fileRead, setFileRead] = useState<string>();
  const [enabled, setEnabled] = useState(true);
  const [disablePrevious, setDisablePrevious] = useState(false);
  const [description, setDescription] = useState("");
  const [submitted, setSubmitted] = useState(false);
  const [busy, setBusy] = useState(false);
  const [server, setServer] = useState<{ field?: string; message: string }>();
  const formRef = useRef<HTMLFormElement>(null);

  const encoded = encodeDraft(draft);
  const noFile = source === "file" && fileRead === undefined;
  const valueErrors: FieldErrors = submitted || touched ? { ...encoded.errors } : {};
  if (noFile && submitted) valueErrors.data = NO_FILE;
  const serverField = server?.field;
  if (serverField?.startsWith("data")) valueErrors[serverField] = server?.message ?? "";
  const descriptionError =
    descriptionProblem(description) ??
    (serverField === "description" ? server?.message : undefined);
  const formError =
    server && !serverField?.startsWith("data") && serverField !== "description"
      ? server.message
      : undefined;

  function focusFirstInvalid() {
    // After React has drawn the messages.
    setTimeout(() => {
      const form = formRef.current;
      const first =
        form?.querySelector<HTMLElement>('[aria-invalid="true"]') ??
        form?.querySelector<HTMLElement>('[role="alert"]');
      first?.focus();
    }, 0);
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    setSubmitted(true);
    setServer(undefined);
    if (encoded.bytes === undefined || noFile || descriptionProblem(description)) {
      focusFirstInvalid();
      return;
    }
    setBusy(true);
    try {
      const client = createClient(SecretService, transport);
      const response = await client.createSecretVersion({
        region: secret.region,
        secretId: secret.id,
        data: encoded.bytes,
        description,
        enabled,
        disablePrevious: enabled && disablePrevious,
      });
      if (response.version) onCreated(response.version);
      onClose();
    } catch (error) {
      const refusal = refusalOf(error);
      setServer(
        refusal.field
          ? { field: refusal.field, message: sentence(refusal.field, refusal.message) }
          : { message: refusal.message },
      );
      focusFirstInvalid();
    } finally {
      setBusy(false);
    }
  }

  return (
    <Modal
      titleId={`${id}-title`}
      descriptionId={`${id}-about`}
      onClose={onClose}
      className="version-dialog"
    >
      <form ref={formRef} noValidate onSubmit={submit}>
        <h2 id={`${id}-title`}>Create version</h2>
        <p id={`${id}-about`} className="hint">
          A new version of <strong>{secret.name}</strong>, of type {KIND_LABELS[kind]}. By default,
          all your secret versions have the same type as the secret they belong to. You cannot
          change the type after you have created the secret.
        </p>
        <SourceChoice
          value={source}
          onChange={(next) => {
            setSource(next);
            // A value typed by hand is not sent when the person chose to import a file.
            if (next === "file") {
              setDraft(emptyDraft(kind));
              setTouched(false);
            }
          }}
          legend="Add your version manually or import it from a file."
        />
        <ValueEntry
          source={source}
          draft={draft}
          onChange={(next) => {
            setDraft(next);
            setTouched(true);
            if (serverField?.startsWith("data")) setServer(undefined);
          }}
          errors={valueErrors}
          onFileRead={setFileRead}
        />
        <Toggle
          id={`${id}-enable`}
          label="Enable"
          checked={enabled}
          onChange={setEnabled}
          hint={
            enabled
              ? "The version is enabled: it can be accessed as soon as it is created."
              : "The version is created disabled: it cannot be accessed until you enable it."
          }
        />
        <Toggle
          id={`${id}-disable-previous`}
          label="Disable previous"
          checked={enabled && disablePrevious}
          onChange={setDisablePrevious}
          disabled={!enabled}
          hint="Disables the version that was the latest enabled one, so only this one is served."
        />
        <Field id={`${id}-description`} label="Description (optional)" error={descriptionError}>
          <textarea
            id={`${id}-description`}
            rows={2}
            value={description}
            onChange={(e) => {
              setDescription(e.target.value);
              if (serverField === "description") setServer(undefined);
            }}
            aria-invalid={descriptionError ? true : undefined}
            aria-describedby={describedBy(`${id}-description`, false, descriptionError)}
          />
        </Field>
        {formError ? (
          <p className="notice notice-error" role="alert" tabIndex={-1}>
            {formError}
          </p>
        ) : null}
        <div className="dialog-actions">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy} aria-busy={busy}>
            {busy ? "Creating…" : "Create version"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
