import { useEffect } from "react";

/** Names the browser tab after the screen ("Secrets · Coffer"), for tabs, history and screen readers. */
export function useTitle(...parts: (string | undefined)[]) {
  const title = [...parts.filter((p) => p !== undefined && p !== ""), "Coffer"].join(" · ");
  useEffect(() => {
    document.title = title;
  }, [title]);
}
