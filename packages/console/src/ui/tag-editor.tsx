import { type Secret, SecretService } from "@coffer/api";
import { useMutation } from "@connectrpc/connect-query";
import { type FormEvent, useState } from "react";
import { useSecretChanged } from "../api/cache.ts";
import { describeError } from "../api/errors.ts";
import { Tags } from "./tags.tsx";

/** A secret's tags, each removable, and a field to add one (UpdateSecret with the etag). */
export function TagEditor({
  secret,
  region,
  editable,
}: {
  secret: Secret;
  region: string;
  editable: boolean;
}) {
  const [draft, setDraft] = useState("");
  const changed = useSecretChanged();
  const update = useMutation(SecretService.method.updateSecret, {
    onSuccess: async (res) => {
      setDraft("");
      await changed(region, res.secret);
    },
  });
  const problem = update.error ? describeError(update.error) : undefined;
  const save = (values: string[]) =>
    update.mutate({ region, secretId: secret.id, tags: { values }, etag: secret.etag });

  if (!editable) return <Tags tags={secret.tags} />;

  function add(e: FormEvent) {
    e.preventDefault();
    const tag = draft.trim();
    if (tag === "" || secret.tags.includes(tag)) return;
    save([...secret.tags, tag]);
  }
  return (
    <div className="tag-editor">
      {secret.tags.length > 0 ? (
        <ul className="tags" aria-label="Tags">
          {secret.tags.map((t) => (
            <li key={t} className="tag tag-removable">
              {t}
              <button
                type="button"
                className="tag-remove"
                aria-label={`Remove tag ${t}`}
                disabled={update.isPending}
                onClick={() => save(secret.tags.filter((x) => x !== t))}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
      ) : (
        <span className="muted">No tags</span>
      )}
      <form onSubmit={add} className="edit-row tag-add">
        <label htmlFor="new-tag" className="visually-hidden">
          New tag
        </label>
        <input
          id="new-tag"
          placeholder="New tag"
          maxLength={128}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          aria-invalid={problem !== undefined}
          aria-describedby={problem ? "new-tag-error" : undefined}
        />
        <button
          type="submit"
          className="btn btn-small"
          disabled={update.isPending || draft.trim() === ""}
        >
          Add tag
        </button>
      </form>
      {problem && (
        <p id="new-tag-error" className="field-error" role="alert">
          {problem.message}
        </p>
      )}
    </div>
  );
}
