import { meshErrorOf } from "proxyless";

/** The code a call failed with: the mesh's (also inside fetch's TypeError), else the error's own, else its text. */
export function codeOf(err: unknown): string {
  return meshErrorOf(err)?.code ?? (err as { code?: string } | null)?.code ?? String(err);
}

/** How a `request()`-shaped call ended, as one string: its status code (body read), or the code it failed with. */
export function outcomeOf(call: Promise<{ readonly statusCode: number; readonly body: { dump(): Promise<unknown> } }>): Promise<string> {
  return call.then(
    async (res) => {
      await res.body.dump();
      return String(res.statusCode);
    },
    (err: unknown) => codeOf(err),
  );
}
