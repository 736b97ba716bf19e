import { useSecret } from "./secret.tsx";

/** Screen 6: a secret's Versions tab. */
export function SecretVersionsScreen() {
  const { secret } = useSecret();
  if (!secret) return null;
  return <h2 className="visually-hidden">Versions</h2>;
}
