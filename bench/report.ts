/** Formats bench results as a fixed-width text table. */

/** Renders `rows` (arrays of cells) under `header`, columns padded to their widest cell. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const w = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  return [
    line(header),
    w.map((n) => "-".repeat(n)).join("  "),
    ...cells.slice(1).map(line),
  ].join("\n");
}

/** A number with `digits` decimals, or "-" when not finite. */
export function fmt(x: number | undefined, digits = 1): string {
  return x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits);
}
