import { act, cleanup, render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { descriptionOf, inputValue, isInvalid } from "../testing/dom-helpers.ts";
import { emptyDraft, encodeDraft, type ValueDraft, type ValueKind } from "./value-draft.ts";
import { SourceChoice, ValueEntry, type ValueSource } from "./value-forms.tsx";

/** A form as a screen holds it: the draft in state, its checks shown as you type, its payload readable. */
function Harness({
  kind,
  initialSource = "manual",
}: {
  kind: ValueKind;
  initialSource?: ValueSource;
}) {
  const [source, setSource] = useState<ValueSource>(initialSource);
  const [draft, setDraft] = useState<ValueDraft>(emptyDraft(kind));
  const encoded = encodeDraft(draft);
  return (
    <>
      <SourceChoice value={source} onChange={setSource} />
      <ValueEntry source={source} draft={draft} onChange={setDraft} errors={encoded.errors} />
      <output data-testid="payload">
        {encoded.bytes ? new TextDecoder().decode(encoded.bytes) : ""}
      </output>
    </>
  );
}

const payload = () => screen.getByTestId("payload").textContent;

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
});

describe("key/value form", () => {
  it("adds rows, refuses a duplicate key on its row, and encodes a flat object", async () => {
    const user = userEvent.setup();
    render(<Harness kind="key_value" />);
    await user.type(screen.getByRole("textbox", { name: "Key 1" }), "USER");
    await user.type(screen.getByRole("textbox", { name: "Value 1" }), "admin");
    await user.click(screen.getByRole("button", { name: "Add a row" }));
    expect(document.activeElement).toBe(screen.getByRole("textbox", { name: "Key 2" }));
    await user.keyboard("USER");
    await user.type(screen.getByRole("textbox", { name: "Value 2" }), "other");
    const key2 = screen.getByRole("textbox", { name: "Key 2" });
    expect(isInvalid(key2)).toBe(true);
    expect(screen.getByRole("alert").textContent).toContain(
      'The key "USER" is already used above; each key may appear once.',
    );
    expect(payload()).toBe("");
    await user.clear(key2);
    await user.type(key2, "PASS");
    expect(screen.queryByRole("alert")).toBeNull();
    expect(payload()).toBe('{"USER":"admin","PASS":"other"}');
    await user.click(screen.getByRole("button", { name: "Remove row 1" }));
    expect(payload()).toBe('{"PASS":"other"}');
  });
});

describe("credential forms", () => {
  it("basic credentials: a username and a password", async () => {
    const user = userEvent.setup();
    render(<Harness kind="basic_credentials" />);
    await user.type(screen.getByLabelText("Username"), "app");
    await user.type(screen.getByLabelText("Password"), "s3cret!");
    expect(screen.getByLabelText("Password").getAttribute("type")).toBe("password");
    expect(payload()).toBe('{"username":"app","password":"s3cret!"}');
  });

  it("database credentials: every field, and a port outside 0-65535 refused next to it", async () => {
    const user = userEvent.setup();
    render(<Harness kind="database_credentials" />);
    await user.selectOptions(screen.getByRole("combobox", { name: "Engine" }), "mysql");
    await user.type(screen.getByRole("textbox", { name: "Host" }), "db.internal");
    const port = screen.getByRole("textbox", { name: "Port" });
    await user.clear(port);
    await user.type(port, "70000");
    expect(isInvalid(port)).toBe(true);
    expect(descriptionOf(port)).toMatch(/The port must be a number from 0 to 65535/);
    await user.clear(port);
    await user.type(port, "3306");
    await user.type(screen.getByRole("textbox", { name: "Database name" }), "shop");
    await user.type(screen.getByRole("textbox", { name: "Username" }), "u");
    await user.type(screen.getByLabelText("Password"), "p");
    expect(JSON.parse(payload() ?? "")).toEqual({
      engine: "mysql",
      host: "db.internal",
      port: "3306",
      dbname: "shop",
      username: "u",
      password: "p",
    });
  });

  it("certificate: a PEM box that refuses text that is not PEM", async () => {
    const user = userEvent.setup();
    render(<Harness kind="certificate" />);
    const box = screen.getByRole("textbox", { name: "Certificate (PEM)" });
    await user.type(box, "not a certificate");
    expect(descriptionOf(box)).toMatch(/Paste PEM text/);
    await user.clear(box);
    await user.click(box);
    await user.paste("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    expect(isInvalid(box)).toBe(false);
    expect(payload()).toContain("-----BEGIN CERTIFICATE-----");
  });

  it("SSH key: one private key, stored as {ssh_private_key}", async () => {
    const user = userEvent.setup();
    render(<Harness kind="ssh_key" />);
    const box = screen.getByRole("textbox", { name: "SSH private key" });
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n";
    await user.click(box);
    await user.paste(key);
    expect(payload()).toBe(JSON.stringify({ ssh_private_key: key }));
  });

  it("opaque: text typed in, stored as it is", async () => {
    const user = userEvent.setup();
    render(<Harness kind="opaque" />);
    await user.type(screen.getByRole("textbox", { name: "Secret value" }), "hunter2");
    expect(payload()).toBe("hunter2");
  });
});

describe("import from a file", () => {
  it("refuses a 65,537-byte file by its size, before reading it", async () => {
    const user = userEvent.setup({ applyAccept: false });
    const read = vi.spyOn(File.prototype, "arrayBuffer");
    render(<Harness kind="opaque" />);
    await user.click(screen.getByRole("radio", { name: "Import from a file" }));
    expect(screen.getByText("The maximum file size for your secret is 64 KiB.")).toBeTruthy();
    const input = screen.getByLabelText("Secret file");
    await user.upload(input, new File([new Uint8Array(65_537)], "big.bin"));
    expect(screen.getByRole("alert").textContent).toContain(
      "This file is 65,537 bytes; the maximum is 64 KiB (65,536 bytes).",
    );
    expect(isInvalid(input)).toBe(true);
    expect(read).not.toHaveBeenCalled();
    expect(payload()).toBe("");
  });

  it("forgets a file read before when the next one is refused, so it cannot be sent instead", async () => {
    const user = userEvent.setup();
    render(<Harness kind="basic_credentials" initialSource="file" />);
    const input = screen.getByLabelText("Secret file");
    await user.upload(input, new File(['{"username":"a","password":"b"}'], "ok.json"));
    await screen.findByText(/Read from ok\.json/);
    expect(payload()).toBe('{"username":"a","password":"b"}');
    await user.upload(input, new File([new Uint8Array(70_000)], "big.json"));
    expect(screen.getByRole("alert").textContent).toContain("This file is 70,000 bytes");
    expect(screen.queryByRole("textbox", { name: "Username" })).toBeNull();
    expect(payload()).toBe('{"username":"","password":""}');
  });

  it("keeps an opaque file's bytes exactly, up to 65,536 bytes", async () => {
    const user = userEvent.setup();
    render(<Harness kind="opaque" initialSource="file" />);
    const bytes = new Uint8Array(65_536).fill(0x41);
    await user.upload(screen.getByLabelText("Secret file"), new File([bytes], "max.bin"));
    expect(await screen.findByText(/max\.bin: 65,536 bytes/)).toBeTruthy();
    expect(payload()).toHaveLength(65_536);
  });

  it("reads a JSON file into the credentials form for review", async () => {
    const user = userEvent.setup();
    render(<Harness kind="basic_credentials" initialSource="file" />);
    const file = new File(['{"username":"svc","password":"pw"}'], "creds.json", {
      type: "application/json",
    });
    await user.upload(screen.getByLabelText("Secret file"), file);
    expect(await screen.findByText(/Read from creds\.json\. Check the value below/)).toBeTruthy();
    expect(inputValue(screen.getByRole("textbox", { name: "Username" }))).toBe("svc");
    expect(payload()).toBe('{"username":"svc","password":"pw"}');
  });

  it("reads a .env file into key/value rows, and says why a nested JSON file cannot be", async () => {
    const user = userEvent.setup();
    render(<Harness kind="key_value" initialSource="file" />);
    await user.upload(
      screen.getByLabelText("Secret file"),
      new File(["export A=1\nB='x y'\n"], ".env"),
    );
    const rows = await screen.findAllByRole("row");
    expect(inputValue(within(rows[2] as HTMLElement).getByRole("textbox", { name: "Key 2" }))).toBe(
      "B",
    );
    expect(payload()).toBe('{"A":"1","B":"x y"}');
    await act(async () => {
      await user.upload(
        screen.getByLabelText("Secret file"),
        new File(['{"a":{"b":1}}'], "n.json"),
      );
    });
    expect(screen.getByRole("alert").textContent).toContain(
      'The key "a" holds an object; a key/value secret holds only strings, numbers and booleans.',
    );
  });
});
