/** Placeholder: another helper builds this screen. */
export function AuditScreen() {
  return (
    <div className="page">
      <h1>Audit</h1>
    </div>
  );
}
