/** The transport-neutral request and response the service core speaks; Express and Lambda translate to and from these. */

export interface CoreRequest {
  readonly method: string;
  /** The path without query string, stage or base path. */
  readonly path: string;
  readonly query: Readonly<Record<string, string | undefined>>;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer | undefined;
  /** The peer's address as the transport sees it (for sign-in throttling and audit). */
  readonly clientAddress?: string | undefined;
}

export interface CoreResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}
