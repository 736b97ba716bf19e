import { useQueryClient } from "@tanstack/react-query";
import { createContext, type ReactNode, useCallback, useContext, useMemo, useState } from "react";
import { forgetSession, readToken, writeToken } from "./session.ts";

export interface Session {
  /** Whether a token is held (it is never exposed to screens). */
  signedIn: boolean;
  /** Keeps a token that GetCaller accepted. */
  signIn(token: string): void;
  /** Forgets the token and everything read with it (the whole query cache), then shows sign-in. */
  signOut(): void;
  /** Forgets the token and the query cache, without navigating. */
  forget(): void;
}

const SessionContext = createContext<Session | undefined>(undefined);

export function SessionProvider({
  children,
  onSignOut,
}: {
  children: ReactNode;
  onSignOut?: () => void;
}) {
  const queryClient = useQueryClient();
  const [signedIn, setSignedIn] = useState(() => readToken() !== undefined);
  const signIn = useCallback(
    (token: string) => {
      queryClient.clear();
      writeToken(token);
      setSignedIn(true);
    },
    [queryClient],
  );
  const forget = useCallback(() => {
    forgetSession();
    void queryClient.cancelQueries();
    queryClient.clear();
    setSignedIn(false);
  }, [queryClient]);
  const signOut = useCallback(() => {
    forget();
    onSignOut?.();
  }, [forget, onSignOut]);
  const value = useMemo(
    () => ({ signedIn, signIn, signOut, forget }),
    [signedIn, signIn, signOut, forget],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (s === undefined) throw new Error("useSession outside SessionProvider");
  return s;
}
