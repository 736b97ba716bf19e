import type { ReactNode } from "react";

/**
 * A column's header: its words, or words that only a screen reader reads
 * (a column of buttons); `false` leaves the column out (one the caller's
 * role does not see).
 */
export type Column = string | { hidden: string } | false;

/**
 * The console's tables of records (secrets, versions, events, tokens,
 * import rows): scrolled on their own when wide, named by a caption only a
 * screen reader reads, one header a column; the caller draws the rows.
 */
export function DataTable({
  caption,
  columns,
  className,
  children,
}: {
  caption?: ReactNode;
  columns: Column[];
  className?: string;
  children: ReactNode;
}) {
  return (
    <div className="table-wrap">
      <table className={className ? `table ${className}` : "table"}>
        {caption ? <caption className="visually-hidden">{caption}</caption> : null}
        <thead>
          <tr>
            {columns.map((column) =>
              column === false ? null : typeof column === "string" ? (
                <th key={column} scope="col">
                  {column}
                </th>
              ) : (
                <th key={column.hidden} scope="col">
                  <span className="visually-hidden">{column.hidden}</span>
                </th>
              ),
            )}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
