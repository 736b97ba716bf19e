import { Link } from "@tanstack/react-router";

export function NotFoundScreen() {
  return (
    <div className="page narrow">
      <h1>Page not found</h1>
      <p>
        There is nothing at this address. <Link to="/">Go to the console's start</Link>.
      </p>
    </div>
  );
}
