/**
 * Rows as a text table with a header, columns padded to their widest cell, for a terminal. @internal
 *
 * @param header - the column names
 * @param rows - the cells, as many per row as there are columns
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string => `  ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd()}\n`;
  return line(header) + rows.map(line).join("");
}
