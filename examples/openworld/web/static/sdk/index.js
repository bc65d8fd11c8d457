// cloudrift's game client SDK for browsers and Node.js: the TypeScript
// counterpart of the Go package client. The wire format is described in
// docs/PROTOCOL.md.
export { connect, dialURL, Client, Message, Defaults } from "./client.js";
export { View } from "./view.js";
export { Reconnector, ReconnectDefaults } from "./reconnect.js";
export { CloudriftError, CloseError, ProtocolError, ConnectionError, ClosedError, MessageTooLargeError, TimeoutError, CloudError, } from "./errors.js";
export { encodeJSON, decodeJSON, decodeText } from "./json.js";
export { Kind, Reason, CloudCode, Limits, reasonName, cloudCodeName, refString, sameRef, keyString, compareRefs, encodeWS, decodeWS, decodeClose, encodeClose, decodeWelcome, encodeWelcome, WireError, isExtensionKind, FirstExtensionKind, LastExtensionKind, } from "./wire.js";
export { decodeCloudReply, decodeCloudResult, decodeCloudNotice, decodeCloudResync, encodeCloudPost, encodeCloudRelease, encodeCloudGet, encodeCloudUnsubscribe, } from "./wire.js";
export { decodeCloudPost, decodeCloudRelease, decodeCloudGet, decodeCloudUnsubscribe, encodeCloudReply, encodeCloudResult, encodeCloudNotice, encodeCloudResync, } from "./peerwire.js";
