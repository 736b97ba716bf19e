/** Placeholder: another helper builds this screen. */
export function BulkImportScreen() {
  return (
    <div className="page">
      <h1>Import secrets</h1>
    </div>
  );
}
