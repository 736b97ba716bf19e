/** "1–50 of 123" and Previous / Next, for a 1-based page of a list with a total. */
export function Pager({
  page,
  pageSize,
  total,
  label,
  onPage,
}: {
  page: number;
  pageSize: number;
  total: number;
  /** What is counted, for screen readers ("secrets"). */
  label: string;
  onPage: (page: number) => void;
}) {
  if (total === 0) return null;
  const first = (page - 1) * pageSize + 1;
  const last = Math.min(page * pageSize, total);
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return (
    <nav className="pager" aria-label={`Pages of ${label}`}>
      <span className="pager-count">
        {first > total ? "" : `${first.toLocaleString()}–${last.toLocaleString()} of `}
        {total.toLocaleString()} {label}
      </span>
      {pages > 1 && (
        <span className="pager-buttons">
          <button
            type="button"
            className="btn btn-small"
            disabled={page <= 1}
            onClick={() => onPage(page - 1)}
          >
            Previous page
          </button>
          <span className="pager-page">
            Page {page} of {pages}
          </span>
          <button
            type="button"
            className="btn btn-small"
            disabled={page >= pages}
            onClick={() => onPage(page + 1)}
          >
            Next page
          </button>
        </span>
      )}
    </nav>
  );
}
