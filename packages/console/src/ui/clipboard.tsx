import { useCallback, useEffect, useState } from "react";

/** How long "Copied" stays. */
const COPIED_MS = 2_000;

/**
 * Copy to the clipboard with a moment of "Copied" feedback (CopiedStatus):
 * `write` resolves to undefined once the text is copied, or to the error
 * to show when the browser refuses.
 */
export function useClipboard() {
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    if (!copied) return;
    const t = setTimeout(() => setCopied(false), COPIED_MS);
    return () => clearTimeout(t);
  }, [copied]);
  const write = useCallback(async (text: string): Promise<Error | undefined> => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
      return undefined;
    } catch {
      return new Error("The browser refused to write to the clipboard.");
    }
  }, []);
  return { copied, write };
}

/** "Copied", announced, for a moment after a copy; the copy itself shows nothing. */
export function CopiedStatus({ copied }: { copied: boolean }) {
  return (
    <span className="copied" role="status">
      {copied ? "Copied" : ""}
    </span>
  );
}
