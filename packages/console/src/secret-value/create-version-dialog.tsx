import type { Secret } from "@coffer/api";

/** Placeholder: another helper (branch console-create) writes the "+ Create version" dialog. */
export function CreateVersionDialog({
  secret,
  onClose,
}: {
  secret: Secret;
  onClose: () => void;
  onCreated: () => void;
}) {
  return (
    <div role="dialog" aria-modal="true" aria-labelledby="create-version-title" className="dialog">
      <h2 id="create-version-title">Create a version of {secret.name}</h2>
      <button type="button" className="btn" onClick={onClose}>
        Cancel
      </button>
    </div>
  );
}
