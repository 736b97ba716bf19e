import { create } from "@bufbuild/protobuf";
import { AccessSecretVersionResponseSchema, SecretService, SecretType } from "@coffer/api";
import { createRouterTransport } from "@connectrpc/connect";
import { TransportProvider } from "@connectrpc/connect-query";
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HIDE_AFTER_MS, RevealValue, SINGLE_ACCESS_WARNING } from "./reveal.tsx";

const PAYLOAD = JSON.stringify({ API_KEY: "sk_live_very_secret" });

let accesses: string[];
function transport() {
  return createRouterTransport(({ service }) => {
    service(SecretService, {
      accessSecretVersion: (req) => {
        accesses.push(req.revision);
        return create(AccessSecretVersionResponseSchema, {
          secretId: req.secretId,
          revision: Number(req.revision),
          data: new TextEncoder().encode(PAYLOAD),
          type: SecretType.KEY_VALUE,
        });
      },
    });
  });
}

function renderReveal(singleAccess = false) {
  return render(
    <TransportProvider transport={transport()}>
      <RevealValue
        region="fr-par"
        secretId="00000000-0000-4000-8000-000000000001"
        secretName="api"
        type={SecretType.KEY_VALUE}
        revision={2}
        singleAccess={singleAccess}
      />
    </TransportProvider>,
  );
}

/** Lets the access call's promises settle, moving fake time by `ms`. */
const advance = (ms = 0) => act(() => vi.advanceTimersByTimeAsync(ms));
const click = (name: string) => act(() => fireEvent.click(screen.getByRole("button", { name })));
const secretShown = () => document.body.textContent?.includes("sk_live_very_secret") ?? false;

beforeEach(() => {
  accesses = [];
  vi.useFakeTimers({
    toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"],
  });
});
afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

describe("Reveal", () => {
  it("masks the value until Reveal, shows it by type, and hides it after 30 s", async () => {
    renderReveal();
    expect(secretShown()).toBe(false);
    expect(accesses).toEqual([]);
    await click("Reveal");
    await advance();
    expect(accesses).toEqual(["2"]);
    expect(secretShown()).toBe(true);
    // key_value as a table of keys and values
    expect(screen.getByRole("rowheader", { name: "API_KEY" })).toBeTruthy();
    await advance(HIDE_AFTER_MS - 1_000);
    expect(secretShown()).toBe(true);
    await advance(1_000);
    expect(secretShown()).toBe(false);
    expect(screen.getByRole("button", { name: "Reveal" })).toBeTruthy();
  });

  it("hides at once on Hide, and a second Reveal reads again (each access is audited)", async () => {
    renderReveal();
    await click("Reveal");
    await advance();
    expect(secretShown()).toBe(true);
    await click("Hide");
    expect(secretShown()).toBe(false);
    await click("Reveal");
    await advance();
    expect(accesses).toEqual(["2", "2"]);
  });

  it("drops the value when the page moves on (unmount)", async () => {
    const view = renderReveal();
    await click("Reveal");
    await advance();
    expect(secretShown()).toBe(true);
    view.unmount();
    expect(secretShown()).toBe(false);
    expect(document.body.innerHTML).not.toContain("sk_live");
  });

  it("hides when the tab goes to the background", async () => {
    renderReveal();
    await click("Reveal");
    await advance();
    Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
    await act(() => document.dispatchEvent(new Event("visibilitychange")));
    expect(secretShown()).toBe(false);
    Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
  });

  it("asks before reading a single-access version, and reads nothing on Cancel", async () => {
    renderReveal(true);
    await click("Reveal");
    expect(document.body.textContent).toContain(SINGLE_ACCESS_WARNING);
    await click("Cancel");
    await advance();
    expect(accesses).toEqual([]);
    await click("Reveal");
    await click("Reveal and consume");
    await advance();
    expect(accesses).toEqual(["2"]);
    expect(secretShown()).toBe(true);
  });

  it("Copy puts the value on the clipboard without showing it, and says Copied", async () => {
    const writeText = vi.fn(async (_: string) => {});
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    renderReveal();
    await click("Copy");
    await advance();
    expect(writeText).toHaveBeenCalledWith(PAYLOAD);
    expect(secretShown()).toBe(false);
    expect(screen.getByRole("status").textContent).toBe("Copied");
    await advance(2_000);
    expect(screen.getByRole("status").textContent).toBe("");
  });
});
