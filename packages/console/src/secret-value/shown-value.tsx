import { useEffect, useState } from "react";
import type { ShownValue } from "./payload.ts";

/** A revealed payload, laid out for its type. */
export function ShownValueView({
  value,
  data,
  fileName,
}: {
  value: ShownValue;
  /** The raw bytes, for the download of a binary payload. */
  data: Uint8Array;
  fileName: string;
}) {
  if (value.kind === "binary")
    return <BinaryValue data={data} size={value.size} fileName={fileName} />;
  if (value.kind === "fields") {
    return (
      <table className="value-table">
        <caption className="visually-hidden">Revealed value</caption>
        <tbody>
          {value.fields.map(([k, v]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
    );
  }
  return <pre className="value-pre">{value.text}</pre>;
}

function BinaryValue({
  data,
  size,
  fileName,
}: {
  data: Uint8Array;
  size: number;
  fileName: string;
}) {
  const [url, setUrl] = useState<string>();
  useEffect(() => {
    const u = URL.createObjectURL(
      new Blob([data as BlobPart], { type: "application/octet-stream" }),
    );
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [data]);
  return (
    <p className="binary-value">
      Binary, {size.toLocaleString()} bytes.{" "}
      {url && (
        <a href={url} download={fileName} className="btn btn-small">
          Download
        </a>
      )}
    </p>
  );
}
