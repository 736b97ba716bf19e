import { SecretService, type SecretType } from "@coffer/api";
import { createClient } from "@connectrpc/connect";
import { useTransport } from "@connectrpc/connect-query";
import { type ReactNode, useCallback, useEffect, useRef, useState } from "react";
import { ConfirmDialog } from "../ui/dialog.tsx";
import { ProblemMessage } from "../ui/problem.tsx";
import { clipboardText, type ShownValue, showValue } from "./payload.ts";
import { ShownValueView } from "./shown-value.tsx";

/** How long a revealed value stays on screen. */
export const HIDE_AFTER_MS = 30_000;
/** How long "Copied" stays. */
const COPIED_MS = 2_000;

export const SINGLE_ACCESS_WARNING = "Revealing consumes this version: it can be read only once";
const SINGLE_ACCESS_COPY_WARNING = "Copying consumes this version: it can be read only once";

interface Shown {
  data: Uint8Array;
  value: ShownValue;
  hidesAt: number;
}

/**
 * "Reveal" and "Copy" for one version. The payload is fetched on demand by a
 * plain AccessSecretVersion call (an audited access), never through the
 * query cache, and lives only in this component's state: zeroed and dropped
 * after HIDE_AFTER_MS, on "Hide", when the tab is hidden, and when the
 * component unmounts (navigation). "Copy" fetches, copies and drops it
 * without showing it. A single-access version asks first: reading it
 * consumes it.
 */
export function RevealValue(props: RevealProps) {
  const { controls, value } = useReveal(props);
  return (
    <div className="reveal">
      {controls}
      {value}
    </div>
  );
}

export interface RevealProps {
  region: string;
  secretId: string;
  secretName: string;
  type: SecretType;
  revision: number;
  singleAccess: boolean;
  /** Called after a successful access (a single access changes the version's state). */
  onAccessed?: () => void;
  /**
   * Whether the version can be read now (default true). A value on screen
   * stays until hidden even when its version stops being readable (a single
   * access just consumed it), but Reveal and Copy are no longer offered.
   */
  readable?: boolean;
}

/**
 * The state behind RevealValue, for a layout that shows the controls and the
 * value apart (the Versions table shows the value in a row of its own).
 */
export function useReveal({
  region,
  secretId,
  secretName,
  type,
  revision,
  singleAccess,
  onAccessed,
  readable = true,
}: RevealProps): { controls: ReactNode; value: ReactNode; shown: boolean } {
  const transport = useTransport();
  const [shown, setShown] = useState<Shown>();
  const [confirming, setConfirming] = useState<"reveal" | "copy">();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState(false);
  const [now, setNow] = useState(() => Date.now());
  const held = useRef<Uint8Array | undefined>(undefined);
  const mounted = useRef(true);

  const hide = useCallback(() => {
    held.current?.fill(0);
    held.current = undefined;
    setShown(undefined);
  }, []);

  // Hide after the delay, count down meanwhile.
  useEffect(() => {
    if (shown === undefined) return;
    const timer = setTimeout(hide, Math.max(0, shown.hidesAt - Date.now()));
    const tick = setInterval(() => setNow(Date.now()), 1_000);
    return () => {
      clearTimeout(timer);
      clearInterval(tick);
    };
  }, [shown, hide]);

  // Hide when the tab goes to the background, and on unmount (navigation).
  useEffect(() => {
    const onVisibility = () => {
      if (document.visibilityState === "hidden") hide();
    };
    mounted.current = true;
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      mounted.current = false;
      document.removeEventListener("visibilitychange", onVisibility);
      hide();
    };
  }, [hide]);

  useEffect(() => {
    if (!copied) return;
    const t = setTimeout(() => setCopied(false), COPIED_MS);
    return () => clearTimeout(t);
  }, [copied]);

  async function access(): Promise<Uint8Array | undefined> {
    setBusy(true);
    setError(undefined);
    try {
      const res = await createClient(SecretService, transport).accessSecretVersion({
        region,
        secretId,
        revision: String(revision),
      });
      onAccessed?.();
      if (!mounted.current) {
        // The page moved on while the call ran: nothing may keep the payload.
        res.data.fill(0);
        return undefined;
      }
      return res.data;
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }

  async function reveal() {
    const data = await access();
    if (data === undefined) return;
    held.current?.fill(0);
    held.current = data;
    const at = Date.now();
    setNow(at);
    setShown({ data, value: showValue(type, data), hidesAt: at + HIDE_AFTER_MS });
  }

  async function copy() {
    const data = await access();
    if (data === undefined) return;
    const { text } = clipboardText(data);
    data.fill(0);
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
    } catch {
      setError(new Error("The browser refused to write to the clipboard."));
    }
  }

  function ask(what: "reveal" | "copy") {
    if (singleAccess) setConfirming(what);
    else void (what === "reveal" ? reveal() : copy());
  }

  const seconds = shown ? Math.max(0, Math.ceil((shown.hidesAt - now) / 1000)) : 0;
  const controls = (
    <div className="reveal-controls">
      <div className="reveal-bar">
        {shown === undefined ? (
          readable && (
            <>
              <span className="masked" role="img" aria-label="Value hidden">
                ••••••••
              </span>
              <button
                type="button"
                className="btn btn-small"
                disabled={busy}
                onClick={() => ask("reveal")}
              >
                Reveal
              </button>
            </>
          )
        ) : (
          <>
            <button type="button" className="btn btn-small" onClick={hide}>
              Hide
            </button>
            <span className="hint nowrap" aria-live="polite">
              Hides in {seconds} s
            </span>
          </>
        )}
        {readable && (
          <button
            type="button"
            className="btn btn-small"
            disabled={busy}
            onClick={() => ask("copy")}
          >
            Copy
          </button>
        )}
        <span className="copied" role="status">
          {copied ? "Copied" : ""}
        </span>
      </div>
      <ProblemMessage error={error} />
      {confirming && (
        <ConfirmDialog
          title="Read this single-access version?"
          confirmLabel={confirming === "reveal" ? "Reveal and consume" : "Copy and consume"}
          danger
          onCancel={() => setConfirming(undefined)}
          onConfirm={() => {
            const what = confirming;
            setConfirming(undefined);
            void (what === "reveal" ? reveal() : copy());
          }}
        >
          <p>
            {confirming === "reveal" ? SINGLE_ACCESS_WARNING : SINGLE_ACCESS_COPY_WARNING}. After
            this, nobody can read version {revision} again, through the console or any client.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
  const value = shown ? (
    <section className="value-box" aria-label={`Value of version ${revision}`}>
      <ShownValueView
        value={shown.value}
        data={shown.data}
        fileName={`${secretName}-v${revision}`}
      />
    </section>
  ) : null;
  return { controls, value, shown: shown !== undefined };
}
