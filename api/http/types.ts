/** The transport-neutral request and response the service core speaks; Express and Lambda translate to and from these. */

export interface CoreRequest {
  readonly method: string;
  /** The path without query string, stage or base path. */
  readonly path: string;
  readonly query: Readonly<Record<string, string | undefined>>;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer | undefined;
  /**
   * From a transport: the peer's address as it sees it (socket, or API Gateway's sourceIp). Inside the core:
   * the client's address, decided from it and X-Forwarded-For by PSEUDO_TRUSTED_PROXIES (clientAddress.ts).
   */
  readonly clientAddress?: string | undefined;
  /**
   * On Lambda: API Gateway's request id (its access logs and `x-amzn-requestid`) and the invocation's id (the
   * function's REPORT line), so the request's log line can be found from either.
   */
  readonly gatewayRequestId?: string | undefined;
  readonly invocationId?: string | undefined;
}

export interface CoreResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Text (JSON, problem+json, metrics), or bytes (an Arrow IPC stream: a transport that needs text sends them as base64). */
  readonly body: string | Buffer;
}
