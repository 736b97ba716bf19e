import { AdminService } from "@coffer/api";
import { createClient } from "@connectrpc/connect";
import { useTransport } from "@connectrpc/connect-query";
import { getRouteApi, useNavigate } from "@tanstack/react-router";
import { type FormEvent, useState } from "react";
import { useSession } from "../session/session-context.tsx";
import { ProblemMessage } from "../ui/problem.tsx";
import { useTitle } from "../ui/title.ts";

const route = getRouteApi("/sign-in");

/**
 * Screen 1: paste a token. It is checked with GetCaller before it is kept
 * (in sessionStorage only); a wrong or revoked token gets the server's message.
 */
export function SignInScreen() {
  const { ended } = route.useSearch();
  useTitle("Sign in");
  const transport = useTransport();
  const { signIn } = useSession();
  const navigate = useNavigate();
  const [token, setToken] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const value = token.trim();
    if (value === "") {
      setError(undefined);
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await createClient(AdminService, transport).getCaller(
        {},
        { headers: { authorization: `Bearer ${value}` } },
      );
      signIn(value);
      setToken("");
      await navigate({ to: "/" });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="signin-card">
      <h1 className="signin-title">
        <span className="brand-mark" aria-hidden="true">
          ◆
        </span>{" "}
        Coffer
      </h1>
      <p className="muted">Sign in to the console with an access token.</p>
      {ended && (
        <div className="notice notice-warn" role="status">
          Your session ended: the token is no longer valid. Sign in again.
        </div>
      )}
      <form onSubmit={submit} noValidate>
        <div className="field">
          <label htmlFor="token">Access token</label>
          <input
            id="token"
            name="token"
            type="password"
            autoComplete="off"
            spellCheck={false}
            required
            value={token}
            onChange={(e) => setToken(e.target.value)}
            aria-invalid={error !== undefined}
            aria-describedby={error !== undefined ? "token-error" : "token-help"}
          />
          <p id="token-help" className="hint">
            The admin token printed by the server on its first start, or any token an admin made for
            you. It is kept in this tab only, until you sign out or close it.
          </p>
        </div>
        <ProblemMessage error={error} id="token-error" />
        <button
          type="submit"
          className="btn btn-primary btn-block"
          disabled={busy || token.trim() === ""}
        >
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
