import type { ReactNode } from "react";

/**
 * A screen's head: its title (the page's one h1), a line about it, and
 * the screen's main actions on the right.
 */
export function PageHead({
  title,
  titleClassName,
  actions,
  children,
}: {
  title: string;
  titleClassName?: string;
  actions?: ReactNode;
  children: ReactNode;
}) {
  return (
    <div className="page-head">
      <div>
        <h1 className={titleClassName}>{title}</h1>
        <p className="muted">{children}</p>
      </div>
      {actions ? <div className="page-actions">{actions}</div> : null}
    </div>
  );
}
