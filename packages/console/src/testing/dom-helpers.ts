/**
 * Small DOM assertions for component tests (the workspace has no jest-dom):
 * what a person, or a screen reader, gets from an element.
 */

/** The text of the elements an element's aria-describedby names: what a screen reader reads after its name. */
export function descriptionOf(element: Element): string {
  const ids = element.getAttribute("aria-describedby")?.split(/\s+/) ?? [];
  return ids
    .map((id) => element.ownerDocument.getElementById(id)?.textContent ?? "")
    .join(" ")
    .trim();
}

/** The value of an input, textarea or select. */
export function inputValue(element: Element): string {
  return (element as HTMLInputElement).value;
}

/** Whether an element is marked invalid for assistive technology. */
export function isInvalid(element: Element): boolean {
  return element.getAttribute("aria-invalid") === "true";
}
