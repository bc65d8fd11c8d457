// JSON payload helpers: payloads are bytes on the wire; games that speak
// JSON encode it as UTF-8.
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
/** UTF-8 JSON of value. */
export function encodeJSON(value) {
    return encoder.encode(JSON.stringify(value));
}
/** Parses UTF-8 JSON; throws on invalid UTF-8 or JSON. */
export function decodeJSON(payload) {
    return JSON.parse(decoder.decode(payload));
}
/** The payload as UTF-8 text; throws on invalid UTF-8. */
export function decodeText(payload) {
    return decoder.decode(payload);
}
