// Errors of the SDK. Every error the SDK raises or reports is a
// CloudriftError; the subclasses say what happened. Compare with instanceof,
// and for a server's close reason with CloseError.reason.

import { CloudCode, Reason, cloudCodeName, reasonName } from "./wire.js";

/** Base class of every error the SDK raises or reports. */
export class CloudriftError extends Error {
  /** The error that led to this one, if any. */
  declare readonly cause?: unknown;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message);
    this.name = new.target.name;
    if (options?.cause !== undefined) {
      (this as { cause?: unknown }).cause = options.cause;
    }
  }
}

/**
 * The server refused or ended the session and said why (a KindClose
 * message): connect rejects with one when the server refuses the client,
 * and a client that the server ends reports one as its error.
 */
export class CloseError extends CloudriftError {
  /** The server's reason code (see Reason). */
  readonly reason: number;
  /** The server's detail; may be empty. */
  readonly detail: string;
  constructor(reason: number, detail: string) {
    super(detail === "" ? `closed by server: ${reasonName(reason)}` : `closed by server: ${reasonName(reason)}: ${detail}`);
    this.reason = reason;
    this.detail = detail;
  }
  /** Whether retrying with the same credentials cannot help. */
  get permanent(): boolean {
    return this.reason === Reason.AuthRefused;
  }
}

/**
 * The server sent something this SDK does not accept (a text message, a
 * message shorter than its header, a payload that does not decode, a
 * second welcome, a server-link kind or a kind that is neither a client
 * kind nor an extension kind), or the SDK was misused in a way the wire
 * cannot carry.
 * The client ends with it.
 */
export class ProtocolError extends CloudriftError {}

/** The connection failed or closed without a reason from the server. */
export class ConnectionError extends CloudriftError {
  /** The WebSocket close code, when the connection closed (1006: abnormally). */
  readonly code: number;
  constructor(message: string, code = 0, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * The client was closed by its own close(), or an operation was attempted
 * after it ended; cause then holds why it ended.
 */
export class ClosedError extends CloudriftError {}

/** A payload exceeds the largest message the server accepts; nothing was sent. */
export class MessageTooLargeError extends CloudriftError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, what = "payload") {
    super(`${what} of ${size} bytes, the server accepts at most ${limit}`);
    this.size = size;
    this.limit = limit;
  }
}

/** connect did not get the welcome, or a cloud call its answer, in time. */
export class TimeoutError extends CloudriftError {}

/** A cloud-memory operation the server refused or could not complete. */
export class CloudError extends CloudriftError {
  /** The outcome code (see CloudCode). */
  readonly code: number;
  /** The server's detail; may be empty. */
  readonly detail: string;
  constructor(code: number, detail: string) {
    super(detail === "" ? `cloud: ${cloudCodeName(code)}` : `cloud: ${cloudCodeName(code)}: ${detail}`);
    this.code = code;
    this.detail = detail;
  }
  /** Whether the operation may succeed if retried later. */
  get temporary(): boolean {
    return (
      this.code === CloudCode.NotOwner ||
      this.code === CloudCode.Unavailable ||
      this.code === CloudCode.Timeout ||
      this.code === CloudCode.ShuttingDown ||
      this.code === CloudCode.RateLimited
    );
  }
}
