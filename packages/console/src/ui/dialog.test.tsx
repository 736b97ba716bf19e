import { cleanup, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { ConfirmDialog } from "./dialog.tsx";

function Opener() {
  const [open, setOpen] = useState(false);
  const [done, setDone] = useState(false);
  return (
    <>
      <button type="button" onClick={() => setOpen(true)}>
        Delete secret
      </button>
      {done && <p>Deleted</p>}
      {open && (
        <ConfirmDialog
          title="Delete db?"
          confirmLabel="Delete"
          danger
          onCancel={() => setOpen(false)}
          onConfirm={() => {
            setDone(true);
            setOpen(false);
          }}
        >
          <p>This cannot be undone.</p>
        </ConfirmDialog>
      )}
    </>
  );
}

afterEach(cleanup);

describe("the modal dialog", () => {
  it("is named by its heading, takes the focus, keeps Tab inside, and gives the focus back on Escape", async () => {
    const user = userEvent.setup();
    render(<Opener />);
    const opener = screen.getByRole("button", { name: "Delete secret" });
    await user.click(opener);
    const dialog = screen.getByRole("dialog", { name: "Delete db?" });
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    const cancel = screen.getByRole("button", { name: "Cancel" });
    expect(document.activeElement).toBe(cancel);
    await user.tab();
    expect(document.activeElement).toBe(screen.getByRole("button", { name: "Delete" }));
    await user.tab();
    expect(document.activeElement).toBe(cancel);
    await user.tab({ shift: true });
    expect(document.activeElement).toBe(screen.getByRole("button", { name: "Delete" }));
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(screen.queryByText("Deleted")).toBeNull();
    expect(document.activeElement).toBe(opener);
  });

  it("gives the focus back to its opener after the action too", async () => {
    const user = userEvent.setup();
    render(<Opener />);
    const opener = screen.getByRole("button", { name: "Delete secret" });
    await user.click(opener);
    await user.click(screen.getByRole("button", { name: "Delete" }));
    expect(screen.getByText("Deleted")).toBeTruthy();
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(document.activeElement).toBe(opener);
  });
});
