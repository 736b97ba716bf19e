/** Placeholder: another helper builds this screen. */
export function CreateSecretScreen() {
  return (
    <div className="page">
      <h1>Create secret</h1>
    </div>
  );
}
