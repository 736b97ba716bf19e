/** Placeholder: another helper builds this screen. */
export function TokensScreen() {
  return (
    <div className="page">
      <h1>Tokens</h1>
    </div>
  );
}
