// cloudrift's game client SDK for browsers and Node.js: the TypeScript
// counterpart of the Go package client. The wire format is described in
// docs/PROTOCOL.md.

export { connect, dialURL, Client, Message, Defaults } from "./client.js";
export type { ClientOptions, ClientEvents, CallOptions, WebSocketFactory, WebSocketLike } from "./client.js";
export type { Notification, Result } from "./cloud.js";
export { View } from "./view.js";
export type { ViewChange } from "./view.js";
export { Reconnector, ReconnectDefaults } from "./reconnect.js";
export type { ReconnectOptions, ReconnectEvents, Failover } from "./reconnect.js";
export { fetchDirectory, directoryURLs, DirectoryError } from "./directory.js";
export type { Directory, DirectoryServer } from "./directory.js";
export type { Unsubscribe } from "./emitter.js";
export {
  CloudriftError,
  CloseError,
  ProtocolError,
  ConnectionError,
  ClosedError,
  MessageTooLargeError,
  TimeoutError,
  CloudError,
} from "./errors.js";
export { encodeJSON, decodeJSON, decodeText } from "./json.js";
export {
  Kind,
  Reason,
  CloudCode,
  Limits,
  reasonName,
  cloudCodeName,
  refString,
  sameRef,
  keyString,
  compareRefs,
  encodeWS,
  decodeWS,
  decodeClose,
  encodeClose,
  decodeWelcome,
  encodeWelcome,
  decodeMove,
  encodeMove,
  WireError,
  isExtensionKind,
  FirstExtensionKind,
  LastExtensionKind,
} from "./wire.js";
export type { ClientRef, Key, Row, Query, Frame, Welcome, Move, CloudReply, CloudResult, CloudNotice, CloudResync } from "./wire.js";
export {
  decodeCloudReply,
  decodeCloudResult,
  decodeCloudNotice,
  decodeCloudResync,
  encodeCloudPost,
  encodeCloudRelease,
  encodeCloudGet,
  encodeCloudUnsubscribe,
} from "./wire.js";
export {
  decodeCloudPost,
  decodeCloudRelease,
  decodeCloudGet,
  decodeCloudUnsubscribe,
  encodeCloudReply,
  encodeCloudResult,
  encodeCloudNotice,
  encodeCloudResync,
} from "./peerwire.js";
export type { CloudPost, CloudRelease, CloudGet, CloudUnsubscribe } from "./peerwire.js";
