import type { Secret } from "@coffer/api";
import { Dialog } from "../ui/dialog.tsx";

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
    <Dialog title={`Create a version of ${secret.name}`} onClose={onClose}>
      <div className="dialog-actions">
        <button type="button" className="btn" onClick={onClose}>
          Cancel
        </button>
      </div>
    </Dialog>
  );
}
