import { useSecret } from "./secret.tsx";

/** Screen 5: a secret's Overview tab. */
export function SecretOverviewScreen() {
  const { secret } = useSecret();
  if (!secret) return null;
  return <h2 className="visually-hidden">Overview</h2>;
}
